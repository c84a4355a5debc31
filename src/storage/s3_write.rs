//! The S3 operations that write: server-side copies (multipart above the single-copy limit),
//! streamed uploads, batched deletes and the lease marker of a run. Only the sandbox calls them,
//! always with keys below its run's own prefix.

use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, Delete, ObjectIdentifier};
use chrono::{DateTime, Utc};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt};

use super::StorageError;
use super::s3::{S3Profile, s3_error};

/// How objects are copied on the server: one `CopyObject` up to `single_copy_max` bytes, else a
/// multipart copy in parts of `part_size` bytes.
#[derive(Debug, Clone, Copy)]
pub struct CopyLimits {
    pub single_copy_max: u64,
    pub part_size: u64,
}

impl Default for CopyLimits {
    /// S3's own limits: a single copy takes at most 5 GiB; parts of 512 MiB keep a 5 TiB object
    /// within 10,000 parts.
    fn default() -> Self {
        Self {
            single_copy_max: 5 * 1024 * 1024 * 1024,
            part_size: 512 * 1024 * 1024,
        }
    }
}

/// Objects up to this size are uploaded in one request; larger ones in parts of this size.
const UPLOAD_PART: u64 = 16 * 1024 * 1024;

/// Characters of a key escaped in `x-amz-copy-source` (everything but unreserved ones and `/`).
const COPY_SOURCE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'/')
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// One object to copy from: bucket, key, and optionally the version and the ETag it must still
/// have (the one listed).
#[derive(Debug, Clone, Copy)]
pub struct CopySource<'a> {
    pub bucket: &'a str,
    pub key: &'a str,
    pub version_id: Option<&'a str>,
    pub etag: Option<&'a str>,
}

impl CopySource<'_> {
    fn header(&self) -> String {
        let mut source = format!(
            "{}/{}",
            self.bucket,
            utf8_percent_encode(self.key, COPY_SOURCE)
        );
        if let Some(version) = self.version_id {
            source.push_str(&format!(
                "?versionId={}",
                utf8_percent_encode(version, NON_ALPHANUMERIC)
            ));
        }
        source
    }

    fn url(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.key)
    }
}

/// Whether a failed copy was refused for lack of permission (the writing key may not read the
/// source; the caller can stream the object instead).
pub(crate) fn is_access_denied(error: &StorageError) -> bool {
    matches!(error, StorageError::S3 { message, .. } if message.starts_with("AccessDenied"))
}

/// Copies `from` (of `size` bytes) to `bucket/key` on the server, with the client of `profile`.
pub async fn copy_object(
    profile: &S3Profile,
    from: CopySource<'_>,
    size: u64,
    bucket: &str,
    key: &str,
    limits: CopyLimits,
) -> Result<(), StorageError> {
    let client = profile.client().await?;
    if size <= limits.single_copy_max {
        let mut request = client
            .copy_object()
            .copy_source(from.header())
            .bucket(bucket)
            .key(key);
        if let Some(etag) = from.etag {
            request = request.copy_source_if_match(etag);
        }
        request
            .send()
            .await
            .map_err(|e| s3_error(bucket, key, e))
            .map_err(|e| changed_or(e, &from))?;
        return Ok(());
    }
    let upload_id = start_multipart(profile, bucket, key).await?;
    let copied = async {
        let part_size = limits.part_size.max(size.div_ceil(10_000));
        let mut parts = Vec::new();
        let mut offset = 0u64;
        let mut number = 1;
        while offset < size {
            let end = (offset + part_size).min(size) - 1;
            let mut request = client
                .upload_part_copy()
                .bucket(bucket)
                .key(key)
                .upload_id(&upload_id)
                .part_number(number)
                .copy_source(from.header())
                .copy_source_range(format!("bytes={offset}-{end}"));
            if let Some(etag) = from.etag {
                request = request.copy_source_if_match(etag);
            }
            let part = request
                .send()
                .await
                .map_err(|e| s3_error(bucket, key, e))
                .map_err(|e| changed_or(e, &from))?;
            parts.push(
                CompletedPart::builder()
                    .part_number(number)
                    .set_e_tag(
                        part.copy_part_result()
                            .and_then(|r| r.e_tag().map(String::from)),
                    )
                    .build(),
            );
            offset = end + 1;
            number += 1;
        }
        complete(profile, bucket, key, &upload_id, parts).await
    }
    .await;
    if copied.is_err() {
        abort(profile, bucket, key, &upload_id).await;
    }
    copied
}

/// A precondition failure means the source object is no longer the one listed.
fn changed_or(error: StorageError, from: &CopySource<'_>) -> StorageError {
    match &error {
        StorageError::S3 { message, .. } if message.starts_with("PreconditionFailed") => {
            StorageError::S3 {
                url: from.url(),
                message:
                    "the object changed during the copy (its ETag is no longer the one listed)"
                        .into(),
            }
        }
        _ => error,
    }
}

/// Uploads `size` bytes read from `reader` to `bucket/key`: one request for small objects,
/// parts of 16 MiB for larger ones, so memory stays bounded. Returns the bytes read, which may
/// differ from `size` if the reader ended early or went on (the caller checks).
pub async fn upload(
    profile: &S3Profile,
    mut reader: impl AsyncRead + Unpin + Send,
    size: u64,
    bucket: &str,
    key: &str,
) -> Result<u64, StorageError> {
    let client = profile.client().await?;
    let read_error = |e: std::io::Error| StorageError::S3 {
        url: format!("s3://{bucket}/{key}"),
        message: format!("reading the data to upload failed: {e}"),
    };
    let first = read_up_to(&mut reader, UPLOAD_PART)
        .await
        .map_err(read_error)?;
    if (first.len() as u64) < UPLOAD_PART || size <= UPLOAD_PART {
        // Small object: whatever follows the first part is only counted, so a source that grew
        // is reported by the size check rather than uploaded in part.
        let rest = tokio::io::copy(&mut reader, &mut tokio::io::sink())
            .await
            .map_err(read_error)?;
        let read = first.len() as u64 + rest;
        put(profile, bucket, key, first).await?;
        return Ok(read);
    }
    let upload_id = start_multipart(profile, bucket, key).await?;
    let uploaded = async {
        let mut parts = Vec::new();
        let mut read = 0u64;
        let mut chunk = first;
        let mut number = 1;
        while !chunk.is_empty() {
            read += chunk.len() as u64;
            let part = client
                .upload_part()
                .bucket(bucket)
                .key(key)
                .upload_id(&upload_id)
                .part_number(number)
                .body(ByteStream::from(chunk))
                .send()
                .await
                .map_err(|e| s3_error(bucket, key, e))?;
            parts.push(
                CompletedPart::builder()
                    .part_number(number)
                    .set_e_tag(part.e_tag().map(String::from))
                    .build(),
            );
            number += 1;
            chunk = read_up_to(&mut reader, UPLOAD_PART)
                .await
                .map_err(read_error)?;
        }
        complete(profile, bucket, key, &upload_id, parts).await?;
        Ok(read)
    }
    .await;
    if uploaded.is_err() {
        abort(profile, bucket, key, &upload_id).await;
    }
    uploaded
}

/// Reads until `limit` bytes or the end of the stream.
async fn read_up_to(reader: &mut (impl AsyncRead + Unpin), limit: u64) -> std::io::Result<Vec<u8>> {
    let mut buffer = Vec::new();
    reader.take(limit).read_to_end(&mut buffer).await?;
    Ok(buffer)
}

async fn start_multipart(
    profile: &S3Profile,
    bucket: &str,
    key: &str,
) -> Result<String, StorageError> {
    let upload = profile
        .client()
        .await?
        .create_multipart_upload()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| s3_error(bucket, key, e))?;
    Ok(upload.upload_id().unwrap_or_default().to_string())
}

async fn complete(
    profile: &S3Profile,
    bucket: &str,
    key: &str,
    upload_id: &str,
    parts: Vec<CompletedPart>,
) -> Result<(), StorageError> {
    profile
        .client()
        .await?
        .complete_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(upload_id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await
        .map_err(|e| s3_error(bucket, key, e))?;
    Ok(())
}

/// Abandons a multipart upload so its parts do not linger (and cost) in the bucket.
async fn abort(profile: &S3Profile, bucket: &str, key: &str, upload_id: &str) {
    if let Ok(client) = profile.client().await
        && let Err(e) = client
            .abort_multipart_upload()
            .bucket(bucket)
            .key(key)
            .upload_id(upload_id)
            .send()
            .await
    {
        tracing::warn!(error = %s3_error(bucket, key, e), "could not abort a multipart upload");
    }
}

/// Writes a small object.
pub async fn put(
    profile: &S3Profile,
    bucket: &str,
    key: &str,
    body: Vec<u8>,
) -> Result<(), StorageError> {
    profile
        .client()
        .await?
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(body))
        .send()
        .await
        .map_err(|e| s3_error(bucket, key, e))?;
    Ok(())
}

/// Deletes every object whose key starts with `prefix` (which ends in `/`), up to 1,000 per
/// request. Returns how many were deleted.
pub async fn delete_prefix(
    profile: &S3Profile,
    bucket: &str,
    prefix: &str,
) -> Result<usize, StorageError> {
    debug_assert!(prefix.ends_with('/'), "only whole folders are deleted");
    let keys: Vec<String> = super::s3::list_files(profile, bucket, prefix)
        .await?
        .into_iter()
        .map(|f| format!("{prefix}{}", f.relative.display()))
        .collect();
    delete_keys(profile, bucket, &keys).await?;
    Ok(keys.len())
}

/// Deletes these keys, up to 1,000 per request; a key that is already gone is no error.
pub(crate) async fn delete_keys(
    profile: &S3Profile,
    bucket: &str,
    keys: &[String],
) -> Result<(), StorageError> {
    let client = profile.client().await?;
    for batch in keys.chunks(1000) {
        let objects = batch
            .iter()
            .map(|k| ObjectIdentifier::builder().key(k).build())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| StorageError::S3 {
                url: format!("s3://{bucket}/"),
                message: e.to_string(),
            })?;
        let delete = Delete::builder()
            .set_objects(Some(objects))
            .quiet(true)
            .build()
            .map_err(|e| StorageError::S3 {
                url: format!("s3://{bucket}/"),
                message: e.to_string(),
            })?;
        let answer = client
            .delete_objects()
            .bucket(bucket)
            .delete(delete)
            .send()
            .await
            .map_err(|e| s3_error(bucket, &batch[0], e))?;
        if let Some(failed) = answer.errors().first() {
            return Err(StorageError::S3 {
                url: format!("s3://{bucket}/{}", failed.key().unwrap_or_default()),
                message: format!(
                    "{} of {} deletes refused, e.g. {}: {}",
                    answer.errors().len(),
                    batch.len(),
                    failed.code().unwrap_or("error"),
                    failed.message().unwrap_or_default()
                ),
            });
        }
    }
    Ok(())
}

/// The body of a run's lease marker `<root>/<job>/<run-id>.lock` on S3: the run holds the lease
/// by rewriting the marker before it expires; a marker whose lease expired belongs to a run
/// whose process died.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Lease {
    pub run_id: String,
    pub pid: u32,
    pub expires: DateTime<Utc>,
}

/// How long a lease lasts; it is renewed every third of that.
pub(crate) const LEASE: Duration = Duration::from_secs(600);

/// Reads a lease marker; `None` when it is gone.
pub(crate) async fn read_lease(
    profile: &S3Profile,
    bucket: &str,
    key: &str,
) -> Result<Option<Lease>, StorageError> {
    let client = profile.client().await?;
    let object = match client.get_object().bucket(bucket).key(key).send().await {
        Ok(o) => o,
        Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => return Ok(None),
        Err(e) => return Err(s3_error(bucket, key, e)),
    };
    let last_modified = object
        .last_modified()
        .and_then(|t| DateTime::from_timestamp(t.secs(), 0));
    let body = object
        .body
        .collect()
        .await
        .map_err(|e| StorageError::S3 {
            url: format!("s3://{bucket}/{key}"),
            message: e.to_string(),
        })?
        .into_bytes();
    // A marker that cannot be read is treated as written at its modification time.
    Ok(Some(serde_json::from_slice(&body).unwrap_or_else(|_| {
        Lease {
            run_id: String::new(),
            pid: 0,
            expires: last_modified.unwrap_or_default()
                + chrono::Duration::from_std(LEASE).unwrap_or_default(),
        }
    })))
}
