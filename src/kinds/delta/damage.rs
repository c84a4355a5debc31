//! Locating damaged data files: when the scan of a restored table fails, each data file is
//! decoded on its own so the finding can name the files that do not decode.

use std::path::Path;

use deltalake::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use deltalake::parquet::file::reader::ChunkReader;

use crate::kinds::delta::table::LogFile;
use crate::storage::RunSandbox;

/// A data file that could not be decoded, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Undecodable {
    pub path: String,
    pub reason: String,
}

/// Decodes every data file fully and returns those that fail. Decoding runs off the async
/// threads; files on S3 are fetched one at a time.
pub(crate) async fn find_undecodable(run: &RunSandbox, files: &[LogFile]) -> Vec<Undecodable> {
    let mut bad = Vec::new();
    for file in files {
        let decoded = match run.local_path() {
            Some(root) => {
                let path = root.join(&file.path);
                tokio::task::spawn_blocking(move || {
                    std::fs::File::open(&path)
                        .map_err(|e| e.to_string())
                        .and_then(decode)
                })
                .await
            }
            None => match run.read(Path::new(&file.path)).await {
                Ok(bytes) => tokio::task::spawn_blocking(move || decode(bytes)).await,
                Err(e) => Ok(Err(e.to_string())),
            },
        };
        if let Ok(Err(reason)) = decoded {
            bad.push(Undecodable {
                path: file.path.clone(),
                reason,
            });
        }
    }
    bad
}

fn decode<R: ChunkReader + 'static>(data: R) -> Result<(), String> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(data)
        .map_err(|e| e.to_string())?
        .build()
        .map_err(|e| e.to_string())?;
    for batch in reader {
        batch.map_err(|e| e.to_string())?;
    }
    Ok(())
}
