//! `serve`'s HTTP endpoints: `/metrics`, `/healthz`, `/readyz`, `/jobs`, `/jobs/{name}`,
//! `/jobs/{name}/runbook`, `POST /jobs/{name}/run` and `POST /-/reload`, over plain HTTP or TLS, with optional basic
//! auth (see [`web_config`]). `/healthz` and `/readyz` answer without auth so probes need no
//! secret. Without basic auth, starting drills and reloading over HTTP are allowed only on a
//! loopback listener or from a loopback peer (the same host, pod or container).

pub mod web_config;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::metrics::DrillMetrics;
use crate::scheduler::{Scheduler, StartError};

pub use web_config::{WebConfig, WebConfigError};

/// A request to reload the configuration, answered with the outcome: `Err` lists the problems.
pub(crate) type ReloadRequest = tokio::sync::oneshot::Sender<Result<(), String>>;

/// What the endpoints serve.
pub struct App {
    scheduler: Scheduler,
    metrics: Arc<DrillMetrics>,
    web: RwLock<WebConfig>,
    loopback: bool,
    reloads: tokio::sync::mpsc::Sender<ReloadRequest>,
}

impl App {
    /// `reloads` carries `POST /-/reload` to whoever owns the configuration.
    pub fn new(
        scheduler: Scheduler,
        metrics: Arc<DrillMetrics>,
        web: WebConfig,
        listen: SocketAddr,
        reloads: tokio::sync::mpsc::Sender<ReloadRequest>,
    ) -> Self {
        Self {
            scheduler,
            metrics,
            web: RwLock::new(web),
            loopback: listen.ip().is_loopback(),
            reloads,
        }
    }

    /// Replaces TLS and auth for new connections and requests.
    pub(crate) fn set_web_config(&self, web: WebConfig) {
        *self.web.write().unwrap_or_else(|e| e.into_inner()) = web;
    }

    fn web(&self) -> WebConfig {
        self.web.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Serves connections from `listener` until `stop` is cancelled.
pub async fn serve(listener: TcpListener, app: Arc<App>, stop: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.cancelled() => return,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "could not accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let app = app.clone();
        tokio::spawn(async move {
            match app.web().tls {
                Some(tls) => {
                    match tokio::time::timeout(Duration::from_secs(10), tls.accept(stream)).await {
                        Ok(Ok(stream)) => connection(TokioIo::new(stream), app, peer).await,
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
                None => connection(TokioIo::new(stream), app, peer).await,
            }
        });
    }
}

async fn connection<I>(io: I, app: Arc<App>, peer: SocketAddr)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service = service_fn(move |request| {
        let app = app.clone();
        async move { Ok::<_, Infallible>(respond(&app, request, peer).await) }
    });
    let served = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30))
        .serve_connection(io, service)
        .await;
    if let Err(e) = served {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}

type Answer = Response<Full<Bytes>>;

async fn respond(app: &App, request: Request<Incoming>, peer: SocketAddr) -> Answer {
    let trusted = may_change_without_auth(app.loopback, peer);
    let path = request.uri().path().trim_end_matches('/').to_string();
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let method = request.method().clone();

    // Probes answer without credentials: they reveal nothing.
    match segments.as_slice() {
        ["healthz"] => return only_get(&method, || text(StatusCode::OK, "ok\n")),
        ["readyz"] => {
            return only_get(&method, || {
                if app.scheduler.is_running() {
                    text(StatusCode::OK, "ready\n")
                } else {
                    text(StatusCode::SERVICE_UNAVAILABLE, "shutting down\n")
                }
            });
        }
        _ => {}
    }
    let auth = app.web().auth;
    if let Some(auth) = &auth {
        let header = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if !auth.allows(header).await {
            let mut answer = text(StatusCode::UNAUTHORIZED, "unauthorized\n");
            answer.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"restore-drill\""),
            );
            return answer;
        }
    }

    match segments.as_slice() {
        [""] => only_get(&method, || {
            text(
                StatusCode::OK,
                "restore-drill\n\n/metrics          Prometheus metrics\n/healthz          the process is alive\n/readyz           configuration loaded, scheduler running\n/jobs             each job's schedule, next run, last outcome (JSON)\n/jobs/NAME        one job (JSON)\n/jobs/NAME/runbook  the job's runbook (Markdown; HTML with Accept: text/html)\nPOST /jobs/NAME/run   drill a job now\nPOST /-/reload    reload the configuration (as SIGHUP)\n",
            )
        }),
        ["metrics"] => only_get(&method, || {
            let mut answer = Response::new(Full::new(Bytes::from(app.metrics.render())));
            answer.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(prometheus::TEXT_FORMAT),
            );
            answer
        }),
        ["jobs"] => only_get(&method, || {
            json_answer(StatusCode::OK, &app.scheduler.jobs())
        }),
        ["jobs", name, "runbook"] => {
            if method != Method::GET && method != Method::HEAD {
                return method_not_allowed("GET");
            }
            let wants_html = request
                .headers()
                .get(header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.contains("text/html"));
            match app.scheduler.runbook(name).await {
                Some(runbook) if wants_html => {
                    page(crate::runbook::html(&runbook), "text/html; charset=utf-8")
                }
                Some(runbook) => page(
                    crate::runbook::markdown(&runbook),
                    "text/markdown; charset=utf-8",
                ),
                None => error(StatusCode::NOT_FOUND, format!("no job named `{name}`")),
            }
        }
        ["jobs", name] => only_get(&method, || {
            match app.scheduler.jobs().into_iter().find(|j| j.name == *name) {
                Some(job) => json_answer(StatusCode::OK, &job),
                None => error(StatusCode::NOT_FOUND, format!("no job named `{name}`")),
            }
        }),
        ["-", "reload"] => {
            if method != Method::POST {
                return method_not_allowed("POST");
            }
            if auth.is_none() && !trusted {
                return error(
                    StatusCode::FORBIDDEN,
                    "reloading over HTTP from another host is disabled: no basic_auth_users are configured; add a web config with basic_auth_users ([server] web_config), send SIGHUP, or run `restore-drill reload` where restore-drill runs".into(),
                );
            }
            let (answer, outcome) = tokio::sync::oneshot::channel();
            if app.reloads.send(answer).await.is_err() {
                return error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the service is shutting down".into(),
                );
            }
            match outcome.await {
                Ok(Ok(())) => text(StatusCode::OK, "configuration reloaded\n"),
                Ok(Err(problems)) => error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!(
                        "the new configuration is refused; the running one stays in effect:\n{problems}"
                    ),
                ),
                Err(_) => error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the service is shutting down".into(),
                ),
            }
        }
        ["jobs", name, "run"] => {
            if method != Method::POST {
                return method_not_allowed("POST");
            }
            if auth.is_none() && !trusted {
                return error(
                    StatusCode::FORBIDDEN,
                    "starting drills over HTTP from another host is disabled: no basic_auth_users are configured; add a web config with basic_auth_users ([server] web_config), or run `restore-drill trigger JOB` where restore-drill runs".into(),
                );
            }
            match app.scheduler.run_now(name).await {
                Ok(run_id) => json_answer(
                    StatusCode::ACCEPTED,
                    &json!({ "job": name, "run_id": run_id }),
                ),
                Err(e @ StartError::UnknownJob(_)) => error(StatusCode::NOT_FOUND, e.to_string()),
                Err(e @ StartError::AlreadyRunning { .. }) => {
                    error(StatusCode::CONFLICT, e.to_string())
                }
                Err(e @ (StartError::ShuttingDown | StartError::Coordination(_))) => {
                    error(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
                }
            }
        }
        _ => error(
            StatusCode::NOT_FOUND,
            format!("no such endpoint: {}", request.uri().path()),
        ),
    }
}

/// Whether a request that changes something (run-now, reload) may come without credentials:
/// only on a loopback listener, or from a loopback peer — the same host, pod or container.
/// (Behind a proxy on the same host, such as a service-mesh sidecar, every peer looks local:
/// configure basic auth there.)
fn may_change_without_auth(loopback_listener: bool, peer: SocketAddr) -> bool {
    loopback_listener || peer.ip().is_loopback()
}

fn only_get(method: &Method, answer: impl FnOnce() -> Answer) -> Answer {
    if method == Method::GET || method == Method::HEAD {
        answer()
    } else {
        method_not_allowed("GET")
    }
}

fn method_not_allowed(allow: &'static str) -> Answer {
    let mut answer = error(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("method not allowed; use {allow}"),
    );
    answer
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    answer
}

fn text(status: StatusCode, body: &'static str) -> Answer {
    let mut answer = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *answer.status_mut() = status;
    answer.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    answer
}

/// A generated document with its content type.
fn page(body: String, content_type: &'static str) -> Answer {
    let mut answer = Response::new(Full::new(Bytes::from(body)));
    answer
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    answer
}

fn json_answer(status: StatusCode, value: &impl serde::Serialize) -> Answer {
    let body = serde_json::to_vec_pretty(value).expect("statuses serialize");
    let mut answer = Response::new(Full::new(Bytes::from(body)));
    *answer.status_mut() = status;
    answer.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    answer
}

fn error(status: StatusCode, message: String) -> Answer {
    json_answer(status, &json!({ "error": message }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_without_auth_come_only_from_this_host() {
        let peer = |ip: &str| SocketAddr::new(ip.parse().unwrap(), 50_000);
        assert!(may_change_without_auth(true, peer("10.1.2.3")));
        assert!(may_change_without_auth(false, peer("127.0.0.1")));
        assert!(may_change_without_auth(false, peer("::1")));
        assert!(!may_change_without_auth(false, peer("10.1.2.3")));
        assert!(!may_change_without_auth(false, peer("192.0.2.7")));
    }
}
