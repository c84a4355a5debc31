//! Integration tests: one binary; `helpers` builds lakes, snapshots and configs on disk.

mod helpers;

mod checks;
mod cli;
mod compare;
mod config_errors;
mod corpus;
mod deploy;
mod drill_catches;
mod history;
mod layout;
mod metrics;
mod pg_dump;
mod replicas;
mod report;
mod restore;
mod runbook;
mod s3;
mod scheduler;
mod selftest;
mod serve;
mod shipped_files;
mod smoke;
mod time_travel;
