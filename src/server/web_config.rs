//! The web configuration file, in the format Prometheus exporters use (exporter-toolkit):
//!
//! ```yaml
//! tls_server_config:
//!   cert_file: server.crt            # PEM; relative paths are relative to this file
//!   key_file: server.key
//!   client_auth_type: RequireAndVerifyClientCert   # optional; default NoClientCert
//!   client_ca_file: clients-ca.crt                 # required with RequireAndVerifyClientCert
//!   min_version: TLS12                             # TLS12 (default) or TLS13
//! basic_auth_users:
//!   prometheus: $2y$10$...           # bcrypt hash, e.g. from `htpasswd -nBC 10 prometheus`
//! ```

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::Deserialize;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{self, RootCertStore, ServerConfig};

/// The web configuration could not be used.
#[derive(Debug, thiserror::Error)]
#[error("web config {}: {message}", .file.display())]
pub struct WebConfigError {
    pub file: PathBuf,
    pub message: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebConfig {
    tls_server_config: Option<RawTls>,
    #[serde(default)]
    basic_auth_users: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert_file: PathBuf,
    key_file: PathBuf,
    client_auth_type: Option<String>,
    client_ca_file: Option<PathBuf>,
    min_version: Option<String>,
}

/// TLS and basic auth for the HTTP listener, as loaded from a web config file.
#[derive(Clone, Default)]
pub struct WebConfig {
    pub tls: Option<TlsAcceptor>,
    pub auth: Option<Arc<BasicAuth>>,
}

impl WebConfig {
    /// Reads and checks a web config file: its YAML, the certificate and key, the hashes.
    pub fn load(file: &Path) -> Result<Self, WebConfigError> {
        let error = |message: String| WebConfigError {
            file: file.to_path_buf(),
            message,
        };
        let text = std::fs::read_to_string(file).map_err(|e| error(format!("cannot read: {e}")))?;
        let raw: RawWebConfig = if text.trim().is_empty() {
            RawWebConfig {
                tls_server_config: None,
                basic_auth_users: BTreeMap::new(),
            }
        } else {
            serde_yaml::from_str(&text).map_err(|e| error(e.to_string()))?
        };
        let base = file.parent().unwrap_or(Path::new("."));
        let tls = raw
            .tls_server_config
            .map(|t| tls_acceptor(t, base).map_err(error))
            .transpose()?;
        let auth = if raw.basic_auth_users.is_empty() {
            None
        } else {
            for (user, hash) in &raw.basic_auth_users {
                if hash.parse::<bcrypt::HashParts>().is_err() {
                    return Err(error(format!(
                        "basic_auth_users: the password of `{user}` is not a bcrypt hash (make one with `htpasswd -nBC 10 {user}`)"
                    )));
                }
            }
            Some(Arc::new(BasicAuth {
                users: raw.basic_auth_users,
                verified: Mutex::new(HashSet::new()),
            }))
        };
        Ok(Self { tls, auth })
    }
}

fn tls_acceptor(raw: RawTls, base: &Path) -> Result<TlsAcceptor, String> {
    let cert_file = base.join(&raw.cert_file);
    let key_file = base.join(&raw.key_file);
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert_file)
        .and_then(|certs| certs.collect::<Result<_, _>>())
        .map_err(|e| format!("tls_server_config.cert_file {}: {e}", cert_file.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "tls_server_config.cert_file {}: no PEM certificate in it",
            cert_file.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&key_file)
        .map_err(|e| format!("tls_server_config.key_file {}: {e}", key_file.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions: &[&rustls::SupportedProtocolVersion] = match raw.min_version.as_deref() {
        None | Some("TLS12") => rustls::ALL_VERSIONS,
        Some("TLS13") => &[&rustls::version::TLS13],
        Some(other) => {
            return Err(format!(
                "tls_server_config.min_version `{other}` is not supported; use TLS12 or TLS13"
            ));
        }
    };
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|e| format!("tls_server_config: {e}"))?;
    let builder = match raw.client_auth_type.as_deref() {
        None | Some("NoClientCert") => builder.with_no_client_auth(),
        Some("RequireAndVerifyClientCert") => {
            let Some(ca) = raw.client_ca_file else {
                return Err(
                    "tls_server_config: client_auth_type RequireAndVerifyClientCert needs client_ca_file"
                        .into(),
                );
            };
            let ca = base.join(ca);
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(&ca)
                .map_err(|e| format!("tls_server_config.client_ca_file {}: {e}", ca.display()))?
            {
                let cert = cert.map_err(|e| {
                    format!("tls_server_config.client_ca_file {}: {e}", ca.display())
                })?;
                roots.add(cert).map_err(|e| {
                    format!("tls_server_config.client_ca_file {}: {e}", ca.display())
                })?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| format!("tls_server_config.client_ca_file {}: {e}", ca.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
        Some(other) => {
            return Err(format!(
                "tls_server_config.client_auth_type `{other}` is not supported; use NoClientCert or RequireAndVerifyClientCert"
            ));
        }
    };
    let mut config = builder.with_single_cert(certs, key).map_err(|e| {
        format!(
            "tls_server_config: the key {} does not fit the certificate {}: {e}",
            key_file.display(),
            cert_file.display()
        )
    })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Users and their bcrypt hashes. Verified `Authorization` headers are remembered, as bcrypt
/// is slow by design and Prometheus sends the same header on every scrape.
pub struct BasicAuth {
    users: BTreeMap<String, String>,
    verified: Mutex<HashSet<String>>,
}

impl BasicAuth {
    /// Whether an `Authorization` header value names a user with the right password.
    pub(crate) async fn allows(self: &Arc<Self>, header: Option<&str>) -> bool {
        let Some(header) = header else { return false };
        if self.verified_lock().contains(header) {
            return true;
        }
        let Some((user, password)) = decode_basic(header) else {
            return false;
        };
        let Some(hash) = self.users.get(&user).cloned() else {
            return false;
        };
        let ok = tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash))
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or(false);
        if ok {
            let mut verified = self.verified_lock();
            if verified.len() >= 64 {
                verified.clear();
            }
            verified.insert(header.to_string());
        }
        ok
    }

    fn verified_lock(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.verified.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// `Basic base64(user:password)` → (user, password).
fn decode_basic(header: &str) -> Option<(String, String)> {
    use base64::Engine;
    let encoded = header.strip_prefix("Basic ")?.trim();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_header_decodes() {
        assert_eq!(
            decode_basic("Basic cHJvbWV0aGV1czpzM2NyZXQ="),
            Some(("prometheus".into(), "s3cret".into()))
        );
        assert_eq!(decode_basic("Bearer x"), None);
    }

    #[tokio::test]
    async fn hashes_are_checked_and_unknown_keys_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("web.yml");
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        std::fs::write(
            &file,
            format!("basic_auth_users:\n  prometheus: '{hash}'\n"),
        )
        .unwrap();
        let web = WebConfig::load(&file).unwrap();
        let auth = web.auth.unwrap();
        assert!(auth.allows(Some("Basic cHJvbWV0aGV1czpzM2NyZXQ=")).await);
        // prometheus:wrong
        assert!(!auth.allows(Some("Basic cHJvbWV0aGV1czp3cm9uZw==")).await);
        assert!(!auth.allows(None).await);

        std::fs::write(&file, "basic_auth_users:\n  prometheus: plain\n").unwrap();
        let e = WebConfig::load(&file).err().unwrap().to_string();
        assert!(e.contains("`prometheus` is not a bcrypt hash"), "{e}");
        std::fs::write(&file, "tls_server_config:\n  cert: a.pem\n").unwrap();
        let e = WebConfig::load(&file).err().unwrap().to_string();
        assert!(
            e.contains("web.yml") && e.contains("unknown field `cert`"),
            "{e}"
        );
        std::fs::write(
            &file,
            "tls_server_config:\n  cert_file: a.pem\n  key_file: a.key\n",
        )
        .unwrap();
        let e = WebConfig::load(&file).err().unwrap().to_string();
        assert!(e.contains("cert_file") && e.contains("a.pem"), "{e}");
    }
}
