//! S3 and S3-compatible stores (MinIO, …): named profiles and the few operations a drill needs
//! on a read-only prefix — list the folders below it, list its objects, download one.
//!
//! A profile (`[storage.NAME]`) names the endpoint, region, addressing style and where the keys
//! come from: the environment variables it names, or else the AWS default chain (environment,
//! profile, web identity, instance metadata). Keys are read when a client is made and never
//! kept in anything that is printed.

use std::collections::HashMap;
use std::path::Path;

use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::OnceCell;

use super::{FileEntry, StorageError};

/// A named S3 profile.
#[derive(Debug)]
pub struct S3Profile {
    pub name: String,
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub path_style: bool,
    /// Names of the environment variables holding the keys (not the keys).
    pub access_key_id_env: Option<String>,
    pub secret_access_key_env: Option<String>,
    client: OnceCell<Client>,
}

impl S3Profile {
    pub fn new(
        name: String,
        endpoint: Option<String>,
        region: Option<String>,
        path_style: bool,
        keys_env: Option<(String, String)>,
    ) -> Self {
        let (access_key_id_env, secret_access_key_env) = match keys_env {
            Some((id, secret)) => (Some(id), Some(secret)),
            None => (None, None),
        };
        Self {
            name,
            endpoint,
            region,
            path_style,
            access_key_id_env,
            secret_access_key_env,
            client: OnceCell::new(),
        }
    }

    /// The profile of jobs that name none: AWS's defaults for everything.
    pub(crate) fn default_chain() -> Self {
        Self::new("default".into(), None, None, false, None)
    }

    /// The keys from the environment variables the profile names, if it names any.
    fn keys(&self) -> Result<Option<(String, String)>, StorageError> {
        let (Some(id_var), Some(secret_var)) =
            (&self.access_key_id_env, &self.secret_access_key_env)
        else {
            return Ok(None);
        };
        let read = |var: &str| {
            std::env::var(var).map_err(|_| StorageError::Credentials {
                profile: self.name.clone(),
                message: format!(
                    "environment variable `{var}` is not set; set it, or remove the `*_env` keys to use the AWS default credential chain"
                ),
            })
        };
        Ok(Some((read(id_var)?, read(secret_var)?)))
    }

    /// The client of this profile, made once.
    pub async fn client(&self) -> Result<&Client, StorageError> {
        self.client
            .get_or_try_init(|| async {
                let mut loader = aws_config::defaults(BehaviorVersion::latest());
                if let Some(region) = &self.region {
                    loader = loader.region(Region::new(region.clone()));
                }
                if let Some(endpoint) = &self.endpoint {
                    loader = loader.endpoint_url(endpoint);
                }
                if let Some((id, secret)) = self.keys()? {
                    loader = loader.credentials_provider(Credentials::new(
                        id,
                        secret,
                        None,
                        None,
                        "restore-drill profile",
                    ));
                }
                let shared = loader.load().await;
                let config = aws_sdk_s3::config::Builder::from(&shared)
                    .force_path_style(self.path_style)
                    .retry_config(
                        aws_sdk_s3::config::retry::RetryConfig::standard().with_max_attempts(5),
                    )
                    .build();
                Ok(Client::from_conf(config))
            })
            .await
    }

    /// Whether both profiles talk to the same service (endpoint and region), so one can copy
    /// objects the other reads on the server.
    pub(crate) fn same_service(&self, other: &S3Profile) -> bool {
        self.endpoint == other.endpoint && self.region == other.region
    }

    /// Options for deltalake's object store (`AWS_*` keys).
    pub(crate) fn delta_options(&self) -> Result<HashMap<String, String>, StorageError> {
        let mut options = HashMap::new();
        if let Some(endpoint) = &self.endpoint {
            options.insert("AWS_ENDPOINT_URL".into(), endpoint.clone());
            if endpoint.starts_with("http://") {
                options.insert("AWS_ALLOW_HTTP".into(), "true".into());
            }
        }
        if let Some(region) = &self.region {
            options.insert("AWS_REGION".into(), region.clone());
        }
        options.insert(
            "AWS_VIRTUAL_HOSTED_STYLE_REQUEST".into(),
            (!self.path_style).to_string(),
        );
        if let Some((id, secret)) = self.keys()? {
            options.insert("AWS_ACCESS_KEY_ID".into(), id);
            options.insert("AWS_SECRET_ACCESS_KEY".into(), secret);
        }
        // Delta's log needs no locking to be read.
        options.insert("AWS_S3_ALLOW_UNSAFE_RENAME".into(), "true".into());
        Ok(options)
    }
}

/// A request's error in words: the service's code, status and message when S3 answered (after
/// the retries), else what went wrong on the way (connection, timeout, credentials).
pub(super) fn s3_error<E>(bucket: &str, prefix: &str, e: SdkError<E, HttpResponse>) -> StorageError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let message = match &e {
        SdkError::ServiceError(service) if service.err().code().is_some() => {
            let error = service.err();
            format!(
                "{} (HTTP {}){}",
                error.code().unwrap_or("error"),
                service.raw().status().as_u16(),
                error.message().map_or(String::new(), |m| format!(": {m}"))
            )
        }
        other => DisplayErrorContext(other).to_string(),
    };
    StorageError::S3 {
        url: format!("s3://{bucket}/{prefix}"),
        message,
    }
}

/// Names of the "folders" directly below `prefix` (which is empty or ends in `/`).
pub(crate) async fn list_folders(
    profile: &S3Profile,
    bucket: &str,
    prefix: &str,
) -> Result<Vec<String>, StorageError> {
    Ok(list_level(profile, bucket, prefix).await?.0)
}

/// What lies directly below `prefix`: the names of its "folders", and its objects by name.
pub(crate) async fn list_level(
    profile: &S3Profile,
    bucket: &str,
    prefix: &str,
) -> Result<(Vec<String>, Vec<String>), StorageError> {
    let client = profile.client().await?;
    let mut pages = client
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .delimiter("/")
        .into_paginator()
        .send();
    let mut names = Vec::new();
    let mut objects = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| s3_error(bucket, prefix, e))?;
        objects.extend(
            page.contents()
                .iter()
                .filter_map(|o| o.key()?.strip_prefix(prefix))
                .filter(|name| !name.is_empty())
                .map(String::from),
        );
        for common in page.common_prefixes() {
            if let Some(name) = common
                .prefix()
                .and_then(|p| p.strip_prefix(prefix))
                .map(|p| p.trim_end_matches('/'))
                .filter(|p| !p.is_empty())
            {
                names.push(name.to_string());
            }
        }
    }
    names.sort();
    objects.sort();
    Ok((names, objects))
}

/// Every object below `prefix`, with its size, by key relative to the prefix.
pub async fn list_files(
    profile: &S3Profile,
    bucket: &str,
    prefix: &str,
) -> Result<Vec<FileEntry>, StorageError> {
    let client = profile.client().await?;
    let mut pages = client
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .into_paginator()
        .send();
    let mut files = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| s3_error(bucket, prefix, e))?;
        for object in page.contents() {
            let Some(relative) = object.key().and_then(|k| k.strip_prefix(prefix)) else {
                continue;
            };
            if relative.is_empty() || relative.ends_with('/') {
                continue; // folder markers
            }
            files.push(FileEntry {
                relative: relative.into(),
                size: object.size().unwrap_or(0).max(0) as u64,
                etag: object.e_tag().map(String::from),
                version_id: None,
            });
        }
    }
    files.sort_by(|a, b| a.relative.cmp(&b.relative));
    Ok(files)
}

/// The content of `key` as a stream (of the given version, or the current one).
pub async fn open(
    profile: &S3Profile,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
) -> Result<impl tokio::io::AsyncBufRead + Send + Unpin + use<>, StorageError> {
    let client = profile.client().await?;
    let object = client
        .get_object()
        .bucket(bucket)
        .key(key)
        .set_version_id(version_id.map(String::from))
        .send()
        .await
        .map_err(|e| s3_error(bucket, key, e))?;
    Ok(object.body.into_async_read())
}

/// The whole content of `key`, in memory.
pub async fn read(
    profile: &S3Profile,
    bucket: &str,
    key: &str,
) -> Result<bytes::Bytes, StorageError> {
    let mut body = open(profile, bucket, key, None).await?;
    let mut out = Vec::new();
    body.read_to_end(&mut out)
        .await
        .map_err(|e| StorageError::S3 {
            url: format!("s3://{bucket}/{key}"),
            message: e.to_string(),
        })?;
    Ok(out.into())
}

/// Downloads `key` (of the given version, or the current one) into the local file `target`;
/// returns the bytes written.
pub(crate) async fn download(
    profile: &S3Profile,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
    target: &Path,
) -> Result<u64, StorageError> {
    let mut body = open(profile, bucket, key, version_id).await?;
    let write_error = |source| StorageError::Write {
        path: target.to_path_buf(),
        source,
    };
    let mut file = tokio::fs::File::create(target).await.map_err(write_error)?;
    let mut buffer = vec![0u8; 256 * 1024];
    let mut written = 0u64;
    loop {
        let read = body.read(&mut buffer).await.map_err(|e| StorageError::S3 {
            url: format!("s3://{bucket}/{key}"),
            message: e.to_string(),
        })?;
        if read == 0 {
            break;
        }
        file.write_all(&buffer[..read]).await.map_err(write_error)?;
        written += read as u64;
    }
    file.flush().await.map_err(write_error)?;
    Ok(written)
}

/// One entry of a versioned prefix's history: a version of an object, or a delete marker.
#[derive(Debug, Clone)]
pub(crate) struct ObjectVersion {
    /// The key relative to the listed prefix.
    pub relative: String,
    pub version_id: String,
    pub last_modified: chrono::DateTime<chrono::Utc>,
    pub size: u64,
    pub etag: Option<String>,
    pub delete_marker: bool,
}

/// The bucket's versioning status as S3 reports it: `Enabled`, `Suspended`, or `never enabled`.
pub async fn versioning(profile: &S3Profile, bucket: &str) -> Result<String, StorageError> {
    let answer = profile
        .client()
        .await?
        .get_bucket_versioning()
        .bucket(bucket)
        .send()
        .await
        .map_err(|e| s3_error(bucket, "", e))?;
    Ok(answer
        .status()
        .map_or("never enabled".to_string(), |s| s.as_str().to_string()))
}

/// Every version and delete marker below `prefix`, page by page, in the order S3 lists them
/// (by key; within a key, newest first).
pub(crate) async fn list_versions(
    profile: &S3Profile,
    bucket: &str,
    prefix: &str,
) -> Result<Vec<ObjectVersion>, StorageError> {
    let client = profile.client().await?;
    let time = |t: Option<&aws_sdk_s3::primitives::DateTime>| {
        t.and_then(|t| chrono::DateTime::from_timestamp(t.secs(), t.subsec_nanos()))
            .unwrap_or_default()
    };
    let mut out = Vec::new();
    let (mut key_marker, mut version_marker) = (None::<String>, None::<String>);
    loop {
        let page = client
            .list_object_versions()
            .bucket(bucket)
            .prefix(prefix)
            .set_key_marker(key_marker.take())
            .set_version_id_marker(version_marker.take())
            .send()
            .await
            .map_err(|e| s3_error(bucket, prefix, e))?;
        for v in page.versions() {
            let Some(relative) = v.key().and_then(|k| k.strip_prefix(prefix)) else {
                continue;
            };
            if relative.is_empty() || relative.ends_with('/') {
                continue;
            }
            out.push(ObjectVersion {
                relative: relative.to_string(),
                version_id: v.version_id().unwrap_or("null").to_string(),
                last_modified: time(v.last_modified()),
                size: v.size().unwrap_or(0).max(0) as u64,
                etag: v.e_tag().map(String::from),
                delete_marker: false,
            });
        }
        for m in page.delete_markers() {
            let Some(relative) = m.key().and_then(|k| k.strip_prefix(prefix)) else {
                continue;
            };
            out.push(ObjectVersion {
                relative: relative.to_string(),
                version_id: m.version_id().unwrap_or("null").to_string(),
                last_modified: time(m.last_modified()),
                size: 0,
                etag: None,
                delete_marker: true,
            });
        }
        if !page.is_truncated().unwrap_or(false) {
            break;
        }
        key_marker = page.next_key_marker().map(String::from);
        version_marker = page.next_version_id_marker().map(String::from);
        if key_marker.is_none() {
            break;
        }
    }
    Ok(out)
}
