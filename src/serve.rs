//! The service's life: load the configuration, sweep sandboxes left by a killed process, start
//! the scheduler and the HTTP listener; reload on SIGHUP (a configuration that does not load is
//! refused and the running one stays); on SIGTERM or SIGINT stop starting drills, give running
//! ones the grace period, cancel the rest (a second signal cancels at once), exit 0.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

use crate::clock::{Clock, SystemClock};
use crate::config::{self, Config};
use crate::drill::sweep_sandboxes;
use crate::history::History;
use crate::metrics::DrillMetrics;
use crate::primitives::duration::format_duration;
use crate::scheduler::{Drills, Scheduler};
use crate::server::{self, App, WebConfig};

/// Runs the service with `config` (loaded from `config_file`, which SIGHUP and `/-/reload`
/// read again) and `web`, its web configuration, until SIGTERM or SIGINT. An error: it could
/// not start (the address is in use, signals cannot be handled).
pub async fn serve(config_file: &Path, config: Config, web: WebConfig) -> anyhow::Result<()> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let metrics = Arc::new(DrillMetrics::new());
    metrics.config_loaded(true, unix_seconds(clock.as_ref()));
    sweep_sandboxes(&config.jobs, clock.now()).await;

    let listener = TcpListener::bind(config.server.listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} ([server] listen in {})",
                config.server.listen,
                config_file.display()
            )
        })?;
    let address = listener.local_addr()?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sighup = signal(SignalKind::hangup())?;

    let history = Arc::new(History::new(&config.history));
    let stop_sync = CancellationToken::new();
    let sync = tokio::spawn(history.clone().sync_loop(
        clock.clone(),
        metrics.clone(),
        stop_sync.clone(),
    ));
    let scheduler = Scheduler::start(
        &config,
        Arc::new(Drills::new(clock.clone())),
        metrics.clone(),
        Some(history.clone()),
        clock.clone(),
    );
    // The gauges and `/jobs` say what the evidence says before anyone can read them.
    scheduler.restore_state().await;
    let coordination = tokio::spawn({
        let scheduler = scheduler.clone();
        let stop = stop_sync.clone();
        async move { scheduler.coordinate(stop).await }
    });
    let job_names = {
        let scheduler = scheduler.clone();
        move || {
            scheduler
                .jobs()
                .into_iter()
                .map(|j| j.name)
                .collect::<Vec<_>>()
        }
    };
    let mut counted = Default::default();
    history
        .show_other_records(&job_names(), &metrics, &mut counted)
        .await;
    let counting = tokio::spawn(history.clone().show_other_records_loop(
        job_names,
        metrics.clone(),
        counted,
        stop_sync.clone(),
    ));
    let tls = web.tls.is_some();
    let (reload_sender, mut reload_requests) = tokio::sync::mpsc::channel(4);
    let app = Arc::new(App::new(
        scheduler.clone(),
        metrics.clone(),
        web,
        address,
        reload_sender,
    ));
    let stop_http = CancellationToken::new();
    let http = tokio::spawn(server::serve(listener, app.clone(), stop_http.clone()));
    tracing::info!(
        listen = %address,
        tls,
        jobs = config.jobs.len(),
        scheduled = config.jobs.iter().filter(|j| j.schedule.is_some()).count(),
        journal = %config.history.journal.display(),
        postgres = history.postgres_place(),
        replica = scheduler.replica(),
        "serving"
    );

    let mut current = config;
    let signal_name = loop {
        tokio::select! {
            _ = sighup.recv() => {
                if let Ok(new) = reload(config_file, &current, &scheduler, &app, &metrics, clock.as_ref()) {
                    current = new;
                }
            }
            Some(answer) = reload_requests.recv() => {
                let reloaded = reload(config_file, &current, &scheduler, &app, &metrics, clock.as_ref())
                    .map(|new| current = new);
                let _ = answer.send(reloaded);
            }
            _ = sigterm.recv() => break "SIGTERM",
            _ = sigint.recv() => break "SIGINT",
        }
    };
    let grace = current.server.shutdown_grace;
    tracing::info!(
        signal = signal_name,
        running = scheduler.active_drills(),
        grace = %format_duration(grace),
        "shutting down: no new drills; running drills may finish within the grace period"
    );
    let shutdown = scheduler.shut_down(grace);
    tokio::pin!(shutdown);
    tokio::select! {
        _ = &mut shutdown => {}
        _ = sigterm.recv() => cancel_now(&scheduler).await,
        _ = sigint.recv() => cancel_now(&scheduler).await,
    }
    stop_http.cancel();
    let _ = http.await;
    // A last send of what the shutdown recorded; what does not arrive waits in the journal.
    stop_sync.cancel();
    let _ = sync.await;
    let _ = counting.await;
    let _ = coordination.await;
    if let Err(e) = history.sync().await {
        tracing::warn!(error = %e, "records wait in the journal until PostgreSQL is reachable");
    }
    tracing::info!("stopped");
    Ok(())
}

async fn cancel_now(scheduler: &Scheduler) {
    tracing::warn!("second signal: cancelling running drills now");
    scheduler.cancel_running();
    scheduler.wait_idle().await;
}

/// Loads the configuration again (SIGHUP, `POST /-/reload`); returns it if it was applied, or
/// the problems that refused it.
fn reload(
    config_file: &Path,
    current: &Config,
    scheduler: &Scheduler,
    app: &App,
    metrics: &DrillMetrics,
    clock: &dyn Clock,
) -> Result<Config, String> {
    let loaded = config::load(config_file)
        .map_err(|e| e.to_string())
        .and_then(|c| {
            load_web_config(&c)
                .map(|w| (c, w))
                .map_err(|e| e.to_string())
        });
    match loaded {
        Err(problems) => {
            metrics.config_loaded(false, unix_seconds(clock));
            tracing::error!(
                file = %config_file.display(),
                problems = %problems,
                "the new configuration is refused; the running one stays in effect"
            );
            Err(problems)
        }
        Ok((new, web)) => {
            if new.server.listen != current.server.listen {
                tracing::warn!(
                    listening = %current.server.listen,
                    configured = %new.server.listen,
                    "[server] listen changed; the new address takes effect after a restart"
                );
            }
            if (new.server.replicas, new.server.claim_lease)
                != (current.server.replicas, current.server.claim_lease)
            {
                tracing::warn!(
                    "[server] replicas or claim_lease changed; the change takes effect after a restart"
                );
            }
            if new.history != current.history {
                tracing::warn!(
                    "[history] changed; the new journal and database take effect after a restart"
                );
            }
            scheduler.reload(&new);
            app.set_web_config(web);
            metrics.config_loaded(true, unix_seconds(clock));
            tracing::info!(
                file = %config_file.display(),
                jobs = new.jobs.len(),
                "configuration reloaded"
            );
            Ok(new)
        }
    }
}

/// The web configuration `config` names, or the default (plain HTTP, no authentication).
pub fn load_web_config(config: &Config) -> Result<WebConfig, server::WebConfigError> {
    match &config.server.web_config {
        Some(file) => WebConfig::load(file),
        None => Ok(WebConfig::default()),
    }
}

fn unix_seconds(clock: &dyn Clock) -> f64 {
    clock.now().timestamp_millis() as f64 / 1000.0
}
