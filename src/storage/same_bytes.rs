//! Whether two stored files hold the same bytes, established as cheaply as their storage
//! allows: equal S3 ETags when both are objects, else both read side by side at I/O speed and
//! compared (nothing decoded).

use std::io::Read;
use std::path::Path;

use tokio::io::{AsyncRead, AsyncReadExt};

use super::{Backend, FileEntry, ReadOnlyDir};

/// How much of each file is compared at a time.
const CHUNK: usize = 4 << 20;

/// How two files were shown to hold the same bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Proof {
    /// Both read and compared byte for byte.
    BytesCompared,
    /// Both objects' ETags are equal (an ETag is a digest of the object's content).
    EqualETags,
}

impl Proof {
    pub fn as_str(self) -> &'static str {
        match self {
            Proof::BytesCompared => "identical_bytes",
            Proof::EqualETags => "identical_etag",
        }
    }
}

/// The answer for one pair of files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sameness {
    Identical(Proof),
    /// They differ: how.
    Different(String),
    /// One of them could not be read: why (its rows are then decoded, which names the error).
    Unknown(String),
}

/// One file to compare: the folder it is listed under and its entry there.
pub(crate) type Side<'a> = (&'a ReadOnlyDir, &'a FileEntry);

/// Compares the bytes of two files. Sizes that differ settle it; equal ETags prove identity;
/// ETags of single-part uploads (plain MD5 digests) that differ prove a difference; otherwise
/// both are read and compared, stopping at the first differing byte.
pub(crate) async fn compare(a: Side<'_>, b: Side<'_>) -> Sameness {
    if a.1.size != b.1.size {
        return Sameness::Different(format!("{} bytes against {}", a.1.size, b.1.size));
    }
    if let (Some(x), Some(y)) = (&a.1.etag, &b.1.etag) {
        if x == y {
            return Sameness::Identical(Proof::EqualETags);
        }
        if !x.contains('-') && !y.contains('-') {
            return Sameness::Different(format!("ETag {x} against {y}"));
        }
    }
    match (a.0.location().backend(), b.0.location().backend()) {
        (Backend::Local(x), Backend::Local(y)) => {
            let (x, y) = (x.join(&a.1.relative), y.join(&b.1.relative));
            tokio::task::spawn_blocking(move || compare_local(&x, &y))
                .await
                .unwrap_or_else(|e| Sameness::Unknown(e.to_string()))
        }
        _ => match (a.0.open(a.1).await, b.0.open(b.1).await) {
            (Ok(x), Ok(y)) => compare_streams(x, y).await,
            (Err(e), _) | (_, Err(e)) => Sameness::Unknown(e.to_string()),
        },
    }
}

fn compare_local(a: &Path, b: &Path) -> Sameness {
    let open = |p: &Path| {
        std::fs::File::open(p).map_err(|e| Sameness::Unknown(format!("{}: {e}", p.display())))
    };
    let (mut x, mut y) = match (open(a), open(b)) {
        (Ok(x), Ok(y)) => (x, y),
        (Err(e), _) | (_, Err(e)) => return e,
    };
    let (mut bx, mut by) = (vec![0u8; CHUNK], vec![0u8; CHUNK]);
    let mut offset = 0u64;
    loop {
        let (nx, ny) = match (fill(&mut x, &mut bx), fill(&mut y, &mut by)) {
            (Ok(nx), Ok(ny)) => (nx, ny),
            (Err(e), _) | (_, Err(e)) => return Sameness::Unknown(e.to_string()),
        };
        if let Some(answer) = judge(&bx[..nx], &by[..ny], offset) {
            return answer;
        }
        offset += nx as u64;
    }
}

/// Reads until `buf` is full or the file ends; returns the bytes read.
fn fill(file: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

async fn fill_async(
    stream: &mut (impl AsyncRead + Unpin),
    buf: &mut [u8],
) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match stream.read(&mut buf[filled..]).await? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

async fn compare_streams(
    mut x: Box<dyn AsyncRead + Send + Unpin>,
    mut y: Box<dyn AsyncRead + Send + Unpin>,
) -> Sameness {
    let (mut bx, mut by) = (vec![0u8; CHUNK], vec![0u8; CHUNK]);
    let mut offset = 0u64;
    loop {
        let (nx, ny) = match (
            fill_async(&mut x, &mut bx).await,
            fill_async(&mut y, &mut by).await,
        ) {
            (Ok(nx), Ok(ny)) => (nx, ny),
            (Err(e), _) | (_, Err(e)) => return Sameness::Unknown(e.to_string()),
        };
        if let Some(answer) = judge(&bx[..nx], &by[..ny], offset) {
            return answer;
        }
        offset += nx as u64;
    }
}

/// The verdict on one chunk of each file starting at `offset`, or `None` to read on.
fn judge(x: &[u8], y: &[u8], offset: u64) -> Option<Sameness> {
    if x != y {
        let at = x.iter().zip(y).take_while(|(a, b)| a == b).count() as u64;
        return Some(Sameness::Different(format!(
            "the bytes differ from offset {}",
            offset + at
        )));
    }
    x.is_empty()
        .then_some(Sameness::Identical(Proof::BytesCompared))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::Location;

    fn folder(path: &Path) -> ReadOnlyDir {
        ReadOnlyDir::new(&Location::parse(path.to_str().unwrap(), Path::new("/")).unwrap())
    }

    fn entry(name: &str, size: u64) -> FileEntry {
        FileEntry {
            relative: name.into(),
            size,
            etag: None,
            version_id: None,
        }
    }

    #[tokio::test]
    async fn a_single_changed_byte_of_a_large_file_is_found_where_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let bytes: Vec<u8> = (0..(CHUNK * 2 + 17))
            .map(|i| (i * 31 % 251) as u8)
            .collect();
        std::fs::write(dir.path().join("a"), &bytes).unwrap();
        std::fs::write(dir.path().join("same"), &bytes).unwrap();
        let mut changed = bytes.clone();
        changed[CHUNK + 5] ^= 1;
        std::fs::write(dir.path().join("b"), &changed).unwrap();
        let folder = folder(dir.path());
        let size = bytes.len() as u64;
        let (a, b, same) = (entry("a", size), entry("b", size), entry("same", size));
        assert_eq!(
            compare((&folder, &a), (&folder, &same)).await,
            Sameness::Identical(Proof::BytesCompared)
        );
        assert_eq!(
            compare((&folder, &a), (&folder, &b)).await,
            Sameness::Different(format!("the bytes differ from offset {}", CHUNK + 5))
        );
        // The same through the streaming path every other storage takes.
        let (x, y) = (
            folder.open(&a).await.unwrap(),
            folder.open(&b).await.unwrap(),
        );
        let answer = compare_streams(x, y).await;
        assert!(matches!(answer, Sameness::Different(_)), "{answer:?}");
        let missing = entry("gone", size);
        assert!(matches!(
            compare((&folder, &a), (&folder, &missing)).await,
            Sameness::Unknown(_)
        ));
    }

    #[tokio::test]
    async fn etags_settle_it_without_reading_when_they_can() {
        let dir = tempfile::tempdir().unwrap();
        let folder = folder(dir.path());
        let tagged = |tag: &str| FileEntry {
            etag: Some(tag.into()),
            ..entry("not-there", 10)
        };
        let pairs = [
            ("\"abc\"", "\"abc\"", Sameness::Identical(Proof::EqualETags)),
            (
                "\"abc\"",
                "\"abd\"",
                Sameness::Different("ETag \"abc\" against \"abd\"".into()),
            ),
        ];
        for (x, y, expected) in pairs {
            assert_eq!(
                compare((&folder, &tagged(x)), (&folder, &tagged(y))).await,
                expected
            );
        }
        // A multipart ETag proves nothing when it differs: the files are read (here: absent).
        let answer = compare(
            (&folder, &tagged("\"abc-2\"")),
            (&folder, &tagged("\"abd\"")),
        )
        .await;
        assert!(matches!(answer, Sameness::Unknown(_)), "{answer:?}");
    }
}
