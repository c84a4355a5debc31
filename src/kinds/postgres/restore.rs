//! Restoring a dump into the drill's server: the roles that own its objects, then `pg_restore`
//! (archives) or `psql` (plain SQL), every error either printed kept and named by the object it
//! concerns; then the tables the dump defines, to be found in the restored database.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Instant;

use serde::Serialize;
use tokio::process::Command;

use super::archive::Format;
use super::copy::{db_error, quote_ident};
use super::target::RestoreTarget;

/// The database a dump is restored into on the drill's own server.
pub const RESTORED_DATABASE: &str = "restored";
/// How many errors a restore report keeps (the count is always complete).
const KEPT_ERRORS: usize = 50;

/// What to do with the roles that own the dump's objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Owners {
    /// Create each role the dump names (without login) before restoring: ownership and grants
    /// restore as they were.
    #[default]
    Create,
    /// Restore without owners and grants (`--no-owner --no-privileges`; archives only).
    Skip,
}

impl Owners {
    pub fn as_str(self) -> &'static str {
        match self {
            Owners::Create => "create",
            Owners::Skip => "skip",
        }
    }
}

/// What the restore did and printed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RestoreLog {
    /// `pg_restore` or `psql`.
    pub tool: String,
    /// Where it restored: the database and its server.
    pub into: String,
    /// Its exit status.
    pub status: String,
    /// Every error it printed (the first few kept), each named by its object when known.
    pub errors: Vec<String>,
    pub error_count: usize,
    /// The tables the dump defines, `schema.name`.
    pub dump_tables: Vec<String>,
    /// The roles created before the restore.
    pub roles_created: Vec<String>,
    pub seconds: f64,
}

impl RestoreLog {
    fn error(&mut self, message: String) {
        self.error_count += 1;
        if self.errors.len() < KEPT_ERRORS {
            self.errors.push(message);
        }
    }
}

/// Restores the dump at `dump` (in the run folder) into the database of `target`, which it
/// creates. An error: the restore could not be attempted (the server refused the database).
pub async fn restore(
    target: &RestoreTarget,
    dump: &Path,
    format: Format,
    owners: Owners,
) -> Result<RestoreLog, String> {
    let started = Instant::now();
    let mut log = RestoreLog {
        tool: if format.is_archive() {
            "pg_restore"
        } else {
            "psql"
        }
        .into(),
        into: target.describe(),
        ..RestoreLog::default()
    };
    let client = super::open(&target.config(target.maintenance()))
        .await
        .map_err(|e| format!("cannot connect to the drill's server: {e}"))?;
    client
        .batch_execute(&format!(
            "CREATE DATABASE {} TEMPLATE template0",
            quote_ident(target.database())
        ))
        .await
        .map_err(|e| format!("cannot create the restore's database: {}", db_error(&e)))?;

    let script = match format {
        Format::PlainGzip => {
            let plain = dump.with_extension("restore.sql");
            let (from, to) = (dump.to_path_buf(), plain.clone());
            tokio::task::spawn_blocking(move || gunzip(&from, &to))
                .await
                .map_err(|e| e.to_string())??;
            Some(plain)
        }
        Format::Plain => Some(dump.to_path_buf()),
        _ => None,
    };
    let (tables, roles) = match &script {
        Some(file) => {
            let file = file.clone();
            tokio::task::spawn_blocking(move || scan_plain(&file))
                .await
                .map_err(|e| e.to_string())??
        }
        None => scan_archive(target, dump, owners).await?,
    };
    log.dump_tables = tables;
    if owners == Owners::Create {
        for role in roles {
            let created = client
                .batch_execute(&format!(
                    "DO $$ BEGIN CREATE ROLE {role} NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$"
                ))
                .await;
            match created {
                Ok(()) => log.roles_created.push(role),
                Err(e) => log.error(format!("creating role {role}: {}", db_error(&e))),
            }
        }
    }
    drop(client);

    let binaries = target.binaries();
    let mut command = match &script {
        Some(file) => {
            let mut c = Command::new(binaries.program("psql"));
            c.args(["-X", "-q", "-v", "ON_ERROR_STOP=0", "-o", "/dev/null", "-f"])
                .arg(file);
            c
        }
        None => {
            let mut c = Command::new(binaries.program("pg_restore"));
            if owners == Owners::Skip {
                c.args(["--no-owner", "--no-privileges"]);
            }
            c.arg(dump);
            c
        }
    };
    command
        .args(target.client_args(target.database()))
        .envs(target.client_env())
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let out = command
        .output()
        .await
        .map_err(|e| format!("cannot run {}: {e}", log.tool))?;
    log.status = out.status.to_string();
    let printed = String::from_utf8_lossy(&out.stderr);
    for error in if script.is_some() {
        psql_errors(&printed)
    } else {
        pg_restore_errors(&printed)
    } {
        log.error(error);
    }
    // A plain script replays its owners and grants whatever pg_restore's options would say.
    if script.is_some()
        && owners == Owners::Skip
        && log
            .errors
            .iter()
            .any(|e| e.contains("role \"") && e.contains("does not exist"))
    {
        log.errors.push(
            "a plain SQL dump sets owners and grants itself: with `owners = \"skip\"` its roles are missing; set `owners = \"create\"`".into(),
        );
    }
    if !out.status.success() && log.error_count == 0 {
        log.error(format!(
            "{} ended with {} without naming an error",
            log.tool, out.status
        ));
    }
    log.seconds = crate::clock::elapsed_seconds(started);
    Ok(log)
}

/// The tables a plain dump creates and the roles it names (owners and grantees).
fn scan_plain(file: &Path) -> Result<(Vec<String>, Vec<String>), String> {
    let reader = BufReader::new(
        std::fs::File::open(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?,
    );
    let mut tables = Vec::new();
    let mut roles = Vec::new();
    let mut in_data = false;
    for line in reader.split(b'\n') {
        let line = line.map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        if in_data {
            in_data = line != b"\\.";
            continue;
        }
        let line = String::from_utf8_lossy(&line);
        if line.starts_with("COPY ") && line.ends_with("FROM stdin;") {
            in_data = true;
            continue;
        }
        if let Some(rest) = line
            .strip_prefix("CREATE TABLE ")
            .or_else(|| line.strip_prefix("CREATE UNLOGGED TABLE "))
        {
            if let Some(name) = rest.strip_suffix(" (").or_else(|| rest.split(' ').next()) {
                tables.push(unquote_qualified(name));
            }
            continue;
        }
        roles_named(&line, &mut roles);
    }
    tables.sort();
    tables.dedup();
    Ok((tables, roles))
}

/// The roles an SQL line makes own or grants something to.
fn roles_named(line: &str, roles: &mut Vec<String>) {
    let role = if line.starts_with("ALTER ") {
        line.split_once(" OWNER TO ").map(|(_, r)| r)
    } else if line.starts_with("GRANT ") {
        line.rsplit_once(" TO ").map(|(_, r)| r)
    } else if line.starts_with("REVOKE ") {
        line.rsplit_once(" FROM ").map(|(_, r)| r)
    } else {
        None
    };
    let Some(role) = role else {
        return;
    };
    let role = role
        .trim_end_matches(';')
        .trim_end_matches(" WITH GRANT OPTION")
        .trim();
    if role.is_empty() || role.eq_ignore_ascii_case("public") || role.contains(' ') {
        return;
    }
    if !roles.iter().any(|r| r == role) {
        roles.push(role.to_string());
    }
}

/// `public.orders` or `"Sales"."Orders"` as `schema.name` without quotes.
fn unquote_qualified(name: &str) -> String {
    name.split('.')
        .map(|part| {
            part.strip_prefix('"')
                .and_then(|p| p.strip_suffix('"'))
                .map_or(part.to_string(), |p| p.replace("\"\"", "\""))
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// The tables an archive's table of contents defines, and (when roles are created) the roles
/// its schema names, read with `pg_restore --list` and `pg_restore --schema-only`.
async fn scan_archive(
    target: &RestoreTarget,
    dump: &Path,
    owners: Owners,
) -> Result<(Vec<String>, Vec<String>), String> {
    let pg_restore = target.binaries().program("pg_restore");
    let listed = Command::new(&pg_restore)
        .arg("--list")
        .arg(dump)
        .output()
        .await
        .map_err(|e| format!("cannot run {}: {e}", pg_restore.display()))?;
    let mut tables = Vec::new();
    for line in String::from_utf8_lossy(&listed.stdout).lines() {
        let tokens: Vec<&str> = line.split_whitespace().collect();
        // `214; 1259 16387 TABLE public orders owner`
        if tokens.len() == 7 && tokens[0].ends_with(';') && tokens[3] == "TABLE" {
            tables.push(format!("{}.{}", tokens[4], tokens[5]));
        }
    }
    tables.sort();
    tables.dedup();
    let mut roles = Vec::new();
    if owners == Owners::Create {
        let schema = Command::new(&pg_restore)
            .args(["--schema-only", "-f", "-"])
            .arg(dump)
            .output()
            .await
            .map_err(|e| format!("cannot run {}: {e}", pg_restore.display()))?;
        for line in String::from_utf8_lossy(&schema.stdout).lines() {
            roles_named(line, &mut roles);
        }
    }
    Ok((tables, roles))
}

/// `pg_restore`'s errors, each named by the table-of-contents entry it was processing.
fn pg_restore_errors(stderr: &str) -> Vec<String> {
    let mut errors = Vec::new();
    let mut entry: Option<String> = None;
    for line in stderr.lines() {
        let Some(rest) = line.strip_prefix("pg_restore: ") else {
            continue;
        };
        if let Some(toc) = rest.strip_prefix("from TOC entry ") {
            // `214; 1259 16387 TABLE orders owner` → `TABLE orders`
            let words: Vec<&str> = toc.split_whitespace().skip(3).collect();
            entry = (words.len() >= 2).then(|| words[..words.len() - 1].join(" "));
        } else if let Some(message) = rest.strip_prefix("error: ") {
            let message = message
                .trim_start_matches("could not execute query: ")
                .replace("ERROR:  ", "");
            errors.push(match &entry {
                Some(object) => format!("{object}: {message}"),
                None => message,
            });
        }
    }
    errors
}

/// `psql`'s errors with the script line they stopped at.
fn psql_errors(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter_map(|line| {
            if let Some(rest) = line.strip_prefix("psql:") {
                // `psql:/run/dump.sql:42: ERROR:  relation "x" does not exist`
                let mut parts = rest.splitn(3, ':');
                let (_file, at, message) = (parts.next()?, parts.next()?, parts.next()?);
                let message = message.trim();
                let message = message
                    .strip_prefix("ERROR:")
                    .or_else(|| message.strip_prefix("FATAL:"))?;
                return Some(format!("line {at}: {}", message.trim()));
            }
            line.strip_prefix("psql: error: ").map(String::from)
        })
        .collect()
}

/// Decompresses a gzip-compressed plain dump for `psql`.
fn gunzip(from: &Path, to: &PathBuf) -> Result<(), String> {
    let input =
        std::fs::File::open(from).map_err(|e| format!("cannot read {}: {e}", from.display()))?;
    let mut decoder = flate2::read::GzDecoder::new(BufReader::new(input));
    let mut output =
        std::fs::File::create(to).map_err(|e| format!("cannot write {}: {e}", to.display()))?;
    std::io::copy(&mut decoder as &mut dyn Read, &mut output)
        .map_err(|e| format!("{} does not decompress: {e}", from.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pg_restore_errors_are_named_by_their_object() {
        let stderr = "pg_restore: while PROCESSING TOC:\npg_restore: from TOC entry 214; 1259 16387 TABLE orders alice\npg_restore: error: could not execute query: ERROR:  role \"alice\" does not exist\nCommand was: ALTER TABLE public.orders OWNER TO alice;\npg_restore: error: could not read from input file: end of file\npg_restore: warning: errors ignored on restore: 1\n";
        let errors = pg_restore_errors(stderr);
        assert_eq!(errors[0], "TABLE orders: role \"alice\" does not exist");
        assert_eq!(errors.len(), 2);
    }

    #[test]
    fn psql_errors_keep_their_line() {
        let stderr = "psql:/tmp/x.sql:42: ERROR:  relation \"t\" does not exist\nLINE 1: SELECT\npsql:/tmp/x.sql:50: NOTICE:  skipping\n";
        assert_eq!(
            psql_errors(stderr),
            vec!["line 42: relation \"t\" does not exist"]
        );
    }

    #[test]
    fn roles_come_from_owners_and_grants() {
        let mut roles = Vec::new();
        for line in [
            "ALTER TABLE public.orders OWNER TO alice;",
            "GRANT SELECT ON TABLE public.orders TO \"Report Reader\";",
            "GRANT ALL ON SCHEMA public TO PUBLIC;",
            "REVOKE ALL ON TABLE public.orders FROM bob;",
            "ALTER TABLE ONLY public.orders ADD CONSTRAINT orders_pkey PRIMARY KEY (id);",
        ] {
            roles_named(line, &mut roles);
        }
        assert_eq!(roles, vec!["alice", "bob"]);
        assert_eq!(
            unquote_qualified("\"Sales\".\"Or\"\"ders\""),
            "Sales.Or\"ders"
        );
    }
}
