//! Locating damaged data files: when the scan of a restored table fails, each data file is
//! decoded on its own so the finding can name the files that do not decode.

use std::path::{Path, PathBuf};

use deltalake::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::table::LogFile;

/// A data file that could not be decoded, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Undecodable {
    pub path: String,
    pub reason: String,
}

/// Decodes every data file fully and returns those that fail. Runs off the async threads.
pub async fn find_undecodable(root: &Path, files: &[LogFile]) -> Vec<Undecodable> {
    let root = root.to_path_buf();
    let files = files.to_vec();
    tokio::task::spawn_blocking(move || {
        files
            .iter()
            .filter_map(|f| {
                decode(&root.join(&f.path)).err().map(|reason| Undecodable {
                    path: f.path.clone(),
                    reason,
                })
            })
            .collect()
    })
    .await
    .unwrap_or_default()
}

fn decode(path: &PathBuf) -> Result<(), String> {
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| e.to_string())?
        .build()
        .map_err(|e| e.to_string())?;
    for batch in reader {
        batch.map_err(|e| e.to_string())?;
    }
    Ok(())
}
