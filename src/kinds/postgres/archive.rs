//! What a dump says about itself before it is restored: its format (custom, directory, tar,
//! plain SQL, gzip-compressed plain SQL) and, from its archive header, when it was made, of which
//! database, by which server and `pg_dump` versions.

use std::io::Read;

use chrono::{NaiveDate, NaiveDateTime};

/// How `pg_dump` wrote the dump (`-F`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Custom,
    Directory,
    Tar,
    Plain,
    PlainGzip,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Custom => "custom",
            Format::Directory => "directory",
            Format::Tar => "tar",
            Format::Plain => "plain",
            Format::PlainGzip => "plain (gzip)",
        }
    }

    /// Whether `pg_restore` reads it (else `psql` replays it).
    pub fn is_archive(self) -> bool {
        matches!(self, Format::Custom | Format::Directory | Format::Tar)
    }
}

/// A dump's own description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub format: Format,
    /// When `pg_dump` started, in the dumping machine's local time (the archive header does not
    /// record its zone); a plain dump holds it only when made with `--verbose`.
    pub created: Option<NaiveDateTime>,
    /// The database dumped (archives only).
    pub database: Option<String>,
    /// The version of the server dumped, e.g. `15.20 (Debian 15.20-0+deb12u1)`.
    pub server_version: Option<String>,
    /// The version of `pg_dump` that wrote the dump.
    pub dump_version: Option<String>,
}

impl Header {
    /// The major version of the server dumped (`15` of `15.20 (…)`), when known.
    pub fn server_major(&self) -> Option<u32> {
        major_of(self.server_version.as_deref()?)
    }

    /// The major version of `pg_dump` that wrote the dump.
    pub fn dump_major(&self) -> Option<u32> {
        major_of(self.dump_version.as_deref()?)
    }
}

/// `15` of `15.20 (Debian …)`, `9` of `9.6.3`.
pub(crate) fn major_of(version: &str) -> Option<u32> {
    version
        .split(|c: char| !c.is_ascii_digit())
        .find(|part| !part.is_empty())?
        .parse()
        .ok()
}

const MAGIC: &[u8] = b"PGDMP";
const TAR_BLOCK: usize = 512;

/// Reads the header of a dump from its first bytes (the `toc.dat` of a directory dump).
/// `directory`: the bytes are a directory dump's `toc.dat`.
pub fn read(start: &[u8], directory: bool) -> Result<Header, String> {
    if start.starts_with(MAGIC) {
        let header = read_archive(start)?;
        // A directory dump's `toc.dat` says tar (3) or directory (5), depending on the version.
        return match (header.format, directory) {
            (Format::Directory | Format::Tar, true) => Ok(Header {
                format: Format::Directory,
                ..header
            }),
            (Format::Custom, false) => Ok(header),
            (Format::Directory, false) => Err(
                "the file is the table of contents of a directory dump; name the dump's folder"
                    .into(),
            ),
            (other, _) => Err(format!(
                "the archive header says format {} where {} was expected",
                other.as_str(),
                if directory { "directory" } else { "custom" }
            )),
        };
    }
    if directory {
        return Err("its toc.dat is not a pg_dump archive (no PGDMP header)".into());
    }
    if start.len() >= TAR_BLOCK + MAGIC.len()
        && &start[257..262] == b"ustar"
        && start[TAR_BLOCK..].starts_with(MAGIC)
    {
        let header = read_archive(&start[TAR_BLOCK..])?;
        if header.format != Format::Tar {
            return Err(format!(
                "a tar file whose archive header says format {}",
                header.format.as_str()
            ));
        }
        return Ok(header);
    }
    if start.starts_with(&[0x1f, 0x8b]) {
        let mut text = Vec::new();
        // The start of a larger stream: decode what there is, an early end is expected.
        let _ = flate2::read::GzDecoder::new(start).read_to_end(&mut text);
        if text.is_empty() {
            return Err("a gzip file whose start does not decompress".into());
        }
        return read_plain(&text).map(|h| Header {
            format: Format::PlainGzip,
            ..h
        });
    }
    read_plain(start)
}

/// A plain SQL dump: `-- PostgreSQL database dump`, the versions, and with `--verbose`, the
/// start time.
fn read_plain(start: &[u8]) -> Result<Header, String> {
    let text = String::from_utf8_lossy(start);
    if !text
        .lines()
        .take(10)
        .any(|l| l.trim() == "-- PostgreSQL database dump")
    {
        return Err(
            "not a pg_dump dump: no PGDMP archive header and no `-- PostgreSQL database dump` line at the start".into(),
        );
    }
    let comment = |prefix: &str| {
        text.lines()
            .take(200)
            .find_map(|l| l.strip_prefix(prefix).map(|v| v.trim().to_string()))
    };
    let created = comment("-- Started on ").and_then(|t| {
        // `2026-12-01 21:33:11 UTC`: the time without its zone name.
        let mut parts = t.split_whitespace();
        let (date, time) = (parts.next()?, parts.next()?);
        NaiveDateTime::parse_from_str(&format!("{date} {time}"), "%Y-%m-%d %H:%M:%S").ok()
    });
    Ok(Header {
        format: Format::Plain,
        created,
        database: None,
        server_version: comment("-- Dumped from database version "),
        dump_version: comment("-- Dumped by pg_dump version "),
    })
}

/// The archive header `pg_dump` writes at the start of custom and tar archives and of a
/// directory dump's `toc.dat` (`WriteHead` in pg_backup_archiver.c).
fn read_archive(bytes: &[u8]) -> Result<Header, String> {
    let mut r = Reader {
        bytes,
        at: MAGIC.len(),
        int_size: 4,
    };
    let (major, minor, _rev) = (r.byte()?, r.byte()?, r.byte()?);
    if major != 1 {
        return Err(format!(
            "archive version {major}.{minor} is not one this reader knows"
        ));
    }
    r.int_size = r.byte()? as usize;
    let _offset_size = r.byte()?;
    if !(1..=8).contains(&r.int_size) {
        return Err(format!("archive header: integer size {}", r.int_size));
    }
    let format = match r.byte()? {
        1 => Format::Custom,
        3 => Format::Tar,
        5 => Format::Directory,
        other => return Err(format!("archive header: unknown format {other}")),
    };
    // Archive 1.15 (PostgreSQL 16) names a compression algorithm in one byte; older ones give
    // a compression level as an integer.
    if minor >= 15 {
        r.byte()?;
    } else {
        r.int()?;
    }
    let mut tm = [0i64; 7];
    for field in &mut tm {
        *field = r.int()?;
    }
    let [sec, min, hour, mday, mon, year, _isdst] = tm;
    let created = NaiveDate::from_ymd_opt((year + 1900) as i32, (mon + 1) as u32, mday as u32)
        .and_then(|d| d.and_hms_opt(hour as u32, min as u32, sec as u32));
    Ok(Header {
        format,
        created,
        database: r.string()?,
        server_version: r.string()?,
        dump_version: r.string()?,
    })
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
    int_size: usize,
}

impl Reader<'_> {
    fn byte(&mut self) -> Result<u8, String> {
        let b = *self
            .bytes
            .get(self.at)
            .ok_or("the archive header is cut short")?;
        self.at += 1;
        Ok(b)
    }

    /// A sign byte, then `int_size` bytes, least significant first.
    fn int(&mut self) -> Result<i64, String> {
        let negative = self.byte()? != 0;
        let mut value: i64 = 0;
        for i in 0..self.int_size {
            value |= (self.byte()? as i64) << (8 * i);
        }
        Ok(if negative { -value } else { value })
    }

    /// A length (-1: none), then that many bytes.
    fn string(&mut self) -> Result<Option<String>, String> {
        let len = self.int()?;
        if len < 0 {
            return Ok(None);
        }
        let end = self.at + len as usize;
        let text = self
            .bytes
            .get(self.at..end)
            .ok_or("the archive header is cut short")?;
        self.at = end;
        Ok(Some(String::from_utf8_lossy(text).into_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first bytes of `pg_dump -Fc` of database `test` by PostgreSQL 15.20.
    fn custom_start() -> Vec<u8> {
        let mut b = b"PGDMP\x01\x0e\x00\x04\x08\x01".to_vec();
        let int = |b: &mut Vec<u8>, v: i32| {
            b.push(u8::from(v < 0));
            b.extend_from_slice(&v.unsigned_abs().to_le_bytes());
        };
        int(&mut b, -1);
        for v in [11, 33, 21, 1, 11, 126, 0] {
            int(&mut b, v);
        }
        for s in ["test", "15.20 (Debian 15.20-0+deb12u1)", "15.20"] {
            int(&mut b, s.len() as i32);
            b.extend_from_slice(s.as_bytes());
        }
        b
    }

    #[test]
    fn reads_a_custom_archive_header() {
        let h = read(&custom_start(), false).unwrap();
        assert_eq!(h.format, Format::Custom);
        assert_eq!(h.database.as_deref(), Some("test"));
        assert_eq!(
            h.created.unwrap().to_string(),
            "2026-12-01 21:33:11".to_string()
        );
        assert_eq!(h.server_major(), Some(15));
        assert_eq!(h.dump_major(), Some(15));
    }

    #[test]
    fn a_cut_header_and_foreign_bytes_are_errors() {
        let start = custom_start();
        assert!(read(&start[..20], false).unwrap_err().contains("cut short"));
        assert!(read(b"hello", false).unwrap_err().contains("not a pg_dump"));
        assert!(read(&start, true).unwrap_err().contains("expected"));
    }

    #[test]
    fn reads_plain_dumps_with_and_without_a_start_time() {
        let text = "--\n-- PostgreSQL database dump\n--\n\n-- Dumped from database version 15.20\n-- Dumped by pg_dump version 16.1\n\n-- Started on 2026-12-01 21:33:11 UTC\n";
        let h = read(text.as_bytes(), false).unwrap();
        assert_eq!(h.format, Format::Plain);
        assert_eq!(h.created.unwrap().to_string(), "2026-12-01 21:33:11");
        assert_eq!((h.server_major(), h.dump_major()), (Some(15), Some(16)));
        let h = read(b"--\n-- PostgreSQL database dump\n--\n", false).unwrap();
        assert_eq!(h.created, None);

        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, text.as_bytes()).unwrap();
        let h = read(&gz.finish().unwrap(), false).unwrap();
        assert_eq!(h.format, Format::PlainGzip);
    }
}
