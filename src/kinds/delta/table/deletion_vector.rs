//! Deletion vectors: where the log says a file's deleted rows are recorded, and the check that a
//! stored vector is whole — present, of the size the log records, its CRC-32 holding, and
//! removing as many rows as the log says.
//!
//! A vector lives in a file beside the data (`deletion_vector_<uuid>.bin`, possibly under a
//! prefix folder), at an absolute path, or inline in the log (Z85-encoded). A vector file starts
//! with a format version byte (1); each vector in it is, at its offset: its size (4 bytes, big
//! endian), the bitmap (a 4-byte little-endian magic number, then a portable
//! `RoaringTreemap`), and the CRC-32 of the bitmap (4 bytes, big endian).

use std::io::Cursor;

use deltalake::kernel::{DeletionVectorDescriptor, StorageType};

/// The magic number of a portable roaring bitmap array.
const PORTABLE_MAGIC: u32 = 1_681_511_377;

/// Where a deletion vector is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VectorPlace {
    /// A file relative to the table root.
    File(String),
    /// A file at an absolute location, outside the table's folder.
    Absolute(String),
    /// In the log itself: the bitmap, Z85-encoded.
    Inline(String),
}

/// One file's deletion vector as the log describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeletionVector {
    pub place: VectorPlace,
    /// Where the vector starts in its file (1 when the log does not say).
    pub offset: u64,
    /// The size of the bitmap in bytes (magic number included).
    pub size: u64,
    /// How many rows it removes from its data file.
    pub cardinality: u64,
}

impl DeletionVector {
    /// The vector a log descriptor names; an undecodable descriptor is an error in words.
    pub(crate) fn from_descriptor(d: &DeletionVectorDescriptor) -> Result<Self, String> {
        let place = match d.storage_type {
            StorageType::UuidRelativePath => {
                VectorPlace::File(relative_path(&d.path_or_inline_dv)?)
            }
            StorageType::AbsolutePath => VectorPlace::Absolute(d.path_or_inline_dv.clone()),
            StorageType::Inline => VectorPlace::Inline(d.path_or_inline_dv.clone()),
        };
        Ok(Self {
            place,
            offset: d.offset.map_or(1, |o| o.max(0) as u64),
            size: d.size_in_bytes.max(0) as u64,
            cardinality: d.cardinality.max(0) as u64,
        })
    }

    /// The vector's file relative to the table root, when it has one there.
    pub fn file(&self) -> Option<&str> {
        match &self.place {
            VectorPlace::File(path) => Some(path),
            _ => None,
        }
    }

    /// How many bytes its file must hold at least: the vector and its size and checksum.
    pub fn end(&self) -> u64 {
        self.offset + 4 + self.size + 4
    }

    /// Checks the vector in the bytes of its file: the version byte, its size, the checksum, and
    /// the number of rows it removes. Says what is wrong otherwise.
    pub(crate) fn check_in_file(&self, file: &[u8]) -> Result<(), String> {
        if file.first() != Some(&1) {
            return Err(format!(
                "it does not start with format version 1 (found {:?})",
                file.first()
            ));
        }
        let start = self.offset as usize;
        if file.len() < self.end() as usize {
            return Err(format!(
                "it is cut short: the vector at offset {} needs {} bytes, the file has {}",
                self.offset,
                self.end(),
                file.len()
            ));
        }
        let stored_size = u32::from_be_bytes(be4(&file[start..]));
        if u64::from(stored_size) != self.size {
            return Err(format!(
                "the vector at offset {} records a size of {stored_size} bytes, the log {}",
                self.offset, self.size
            ));
        }
        let bitmap = &file[start + 4..start + 4 + self.size as usize];
        let crc_at = start + 4 + self.size as usize;
        let stored_crc = u32::from_be_bytes(be4(&file[crc_at..]));
        let crc = crc32fast::hash(bitmap);
        if crc != stored_crc {
            return Err(format!(
                "the vector at offset {} fails its CRC-32 checksum (stored {stored_crc:08x}, computed {crc:08x}): its bytes were changed",
                self.offset
            ));
        }
        self.check_bitmap(bitmap)
    }

    /// Checks an inline vector: it decodes and removes as many rows as the log says.
    pub(crate) fn check_inline(&self) -> Result<(), String> {
        let VectorPlace::Inline(encoded) = &self.place else {
            return Ok(());
        };
        let bitmap = z85::decode(encoded).map_err(|e| format!("it is not valid Z85 ({e})"))?;
        self.check_bitmap(&bitmap)
    }

    /// A bitmap (magic number and roaring treemap) removes `cardinality` rows.
    fn check_bitmap(&self, bitmap: &[u8]) -> Result<(), String> {
        if bitmap.len() < 4 || u32::from_le_bytes(be4(bitmap)) != PORTABLE_MAGIC {
            return Err("its bitmap does not start with the roaring bitmap magic number".into());
        }
        let rows = roaring::RoaringTreemap::deserialize_from(Cursor::new(&bitmap[4..]))
            .map_err(|e| format!("its bitmap does not decode ({e})"))?;
        if rows.len() != self.cardinality {
            return Err(format!(
                "it removes {} rows but the log says {}",
                rows.len(),
                self.cardinality
            ));
        }
        Ok(())
    }
}

/// The first four bytes of a slice (callers check the length first).
fn be4(bytes: &[u8]) -> [u8; 4] {
    [bytes[0], bytes[1], bytes[2], bytes[3]]
}

/// `<prefix><20 characters of Z85 UUID>` → `<prefix>/deletion_vector_<uuid>.bin`.
fn relative_path(encoded: &str) -> Result<String, String> {
    let split = encoded
        .len()
        .checked_sub(20)
        .filter(|at| encoded.is_char_boundary(*at))
        .ok_or_else(|| format!("`{encoded}` is not a deletion vector path"))?;
    let (prefix, id) = encoded.split_at(split);
    let bytes = z85::decode(id).map_err(|e| format!("`{encoded}`: {e}"))?;
    let uuid = uuid::Uuid::from_slice(&bytes).map_err(|e| format!("`{encoded}`: {e}"))?;
    Ok(if prefix.is_empty() {
        format!("deletion_vector_{uuid}.bin")
    } else {
        format!("{prefix}/deletion_vector_{uuid}.bin")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A vector file with one vector removing `rows`, at offset 1.
    fn vector_file(rows: &[u64]) -> (Vec<u8>, DeletionVector) {
        let treemap: roaring::RoaringTreemap = rows.iter().copied().collect();
        let mut bitmap = PORTABLE_MAGIC.to_le_bytes().to_vec();
        treemap.serialize_into(&mut bitmap).unwrap();
        let mut file = vec![1u8];
        file.extend((bitmap.len() as u32).to_be_bytes());
        file.extend(&bitmap);
        file.extend(crc32fast::hash(&bitmap).to_be_bytes());
        let vector = DeletionVector {
            place: VectorPlace::File("deletion_vector_x.bin".into()),
            offset: 1,
            size: bitmap.len() as u64,
            cardinality: rows.len() as u64,
        };
        (file, vector)
    }

    #[test]
    fn a_whole_vector_checks_and_damage_is_named() {
        let (file, vector) = vector_file(&[0, 3, 7]);
        assert_eq!(vector.check_in_file(&file), Ok(()));
        let mut flipped = file.clone();
        flipped[12] ^= 0x40;
        assert!(
            vector
                .check_in_file(&flipped)
                .unwrap_err()
                .contains("fails its CRC-32 checksum")
        );
        assert!(
            vector
                .check_in_file(&file[..file.len() - 2])
                .unwrap_err()
                .contains("cut short")
        );
        let wrong = DeletionVector {
            cardinality: 2,
            ..vector
        };
        assert!(
            wrong
                .check_in_file(&file)
                .unwrap_err()
                .contains("removes 3 rows but the log says 2")
        );
    }

    #[test]
    fn relative_paths_are_derived_from_the_uuid() {
        let uuid = uuid::Uuid::parse_str("61d16c75-6994-46b7-a15b-8b538852e50e").unwrap();
        let encoded = z85::encode(uuid.as_bytes());
        assert_eq!(
            relative_path(&encoded).unwrap(),
            "deletion_vector_61d16c75-6994-46b7-a15b-8b538852e50e.bin"
        );
        assert_eq!(
            relative_path(&format!("ab{encoded}")).unwrap(),
            "ab/deletion_vector_61d16c75-6994-46b7-a15b-8b538852e50e.bin"
        );
        assert!(relative_path("short").is_err());
    }
}
