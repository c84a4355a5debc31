//! PostgreSQL logical backups (`pg_dump`): dumps found by name under a backup location, each
//! restored into a throwaway PostgreSQL started in the run's folder, checked by `pg_restore`'s
//! own errors and `pg_amcheck`, and read table by table into DataFusion for the suite.

pub mod amcheck;
pub mod archive;
pub mod catalog;
pub mod copy;
pub mod restore;
pub mod sequences;
pub mod server;
pub mod snapshot;
