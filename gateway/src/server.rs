//! Assembles Pingora: the proxy service (http and https listeners), the admin service, reload
//! triggers and a graceful shutdown that ends as soon as requests in flight are done.

use crate::admin::AdminApp;
use crate::conf::types::ServerSettings;
use crate::proxy::Gateway;
use crate::state::State;
use anyhow::Context;
use pingora::apps::HttpServerOptions;
use pingora::listeners::tls::TlsSettings;
use pingora::proxy::ProxyServiceBuilder;
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::{ExecutionPhase, RunArgs, Server};
use pingora::services::listening::Service;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub fn run(conf_path: std::path::PathBuf) -> anyhow::Result<()> {
    let state = match crate::background::block_on(State::start(conf_path.clone())) {
        Ok(s) => s,
        Err(errs) => {
            for e in &errs {
                eprintln!("{e}");
            }
            anyhow::bail!(
                "{} error(s) in {}; not starting",
                errs.len(),
                conf_path.display()
            );
        }
    };
    let snap = state.current();
    let conf = &snap.conf;
    if conf.access_log.enabled {
        crate::jsonlog::init_access(&conf.access_log.target)
            .with_context(|| format!("cannot open the access log `{}`", conf.access_log.target))?;
    }
    crate::jsonlog::init_audit(&conf.audit.target)
        .with_context(|| format!("cannot open the audit log `{}`", conf.audit.target))?;

    let sconf = pingora_conf(&conf.server);
    let threads = sconf.threads;
    let grace = conf.server.grace_period.get();
    let mut server = Server::new_with_opt_and_conf(Some(Opt::default()), sconf);
    server.bootstrap();

    let mut opts = HttpServerOptions::default();
    opts.h2c = conf.listen.h2c;
    let mut proxy = ProxyServiceBuilder::new(
        &server.configuration,
        Gateway {
            state: state.clone(),
        },
    )
    .name("warden")
    .server_options(opts)
    .build();
    if let Some(addr) = &conf.listen.http {
        proxy.add_tcp(addr);
    }
    if let Some(addr) = &conf.listen.https {
        let mut tls = match &conf.tls.client_auth {
            None => TlsSettings::intermediate("", "").context("TLS settings")?,
            Some(auth) => {
                let mut t =
                    TlsSettings::with_callbacks(Box::new(crate::client_certs::CaptureClientCert))
                        .context("TLS settings")?;
                t.set_client_cert_verifier(
                    crate::client_certs::verifier(auth)
                        .map_err(anyhow::Error::msg)
                        .context("tls.client_auth")?,
                );
                t
            }
        };
        tls.set_cert_resolver(crate::tls::RESOLVER.clone());
        tls.enable_h2();
        proxy.add_tls_with_settings(addr, None, tls);
    }
    let mut admin = Service::new(
        "warden-admin".to_string(),
        AdminApp {
            state: state.clone(),
        },
    );
    admin.add_tcp(&conf.admin.listen);
    admin.threads = Some(1);

    crate::triggers::on_sighup(state.clone()).context("installing the SIGHUP handler")?;
    if conf.server.watch_conf {
        if let Err(e) = crate::triggers::watch_file(state.clone()) {
            tracing::warn!(error = %e, "cannot watch the conf file; reload with SIGHUP or the admin API");
        }
    }
    watch_shutdown(&server, state.clone(), grace);

    server.add_service(proxy);
    server.add_service(admin);
    tracing::info!(
        http = ?conf.listen.http,
        https = ?conf.listen.https,
        admin = %conf.admin.listen,
        routes = snap.routes.len(),
        threads,
        "warden starting"
    );
    drop(snap);
    server.run(RunArgs::default());
    crate::jsonlog::flush();
    Ok(())
}

/// Pingora's runtime settings for `server`: also the bare Pingora baseline's
/// (`warden-loadtest pingora-passthrough`), so the two differ only in what the proxy does.
pub fn pingora_conf(server: &ServerSettings) -> ServerConf {
    let threads = server.threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
    });
    let mut sconf = ServerConf {
        threads,
        // Pingora sleeps the whole grace period even when idle; `watch_shutdown` exits as soon
        // as the last request is done, so this is only the upper bound.
        grace_period_seconds: Some(server.grace_period.get().as_secs().max(1)),
        graceful_shutdown_timeout_seconds: Some(1),
        upstream_keepalive_pool_size: server.upstream_keepalive_pool_size,
        ..ServerConf::default()
    };
    sconf.work_stealing = true;
    sconf
}

/// On SIGTERM Pingora stops accepting at once; this ends the process as soon as requests in
/// flight are done (or the grace period is over), instead of always sleeping it out.
fn watch_shutdown(server: &Server, state: Arc<State>, grace: Duration) {
    let mut phases = server.watch_execution_phase();
    let spawned = std::thread::Builder::new()
        .name("warden-shutdown".into())
        .spawn(move || {
            while let Ok(phase) = phases.blocking_recv() {
                if matches!(phase, ExecutionPhase::GracefulTerminate) {
                    state.draining.store(true, Ordering::Release);
                    let deadline = Instant::now() + grace;
                    tracing::info!(
                        in_flight = crate::proxy::ctx::IN_FLIGHT.load(Ordering::Acquire),
                        "SIGTERM: draining"
                    );
                    while crate::proxy::ctx::IN_FLIGHT.load(Ordering::Acquire) > 0
                        && Instant::now() < deadline
                    {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    tracing::info!("drained; exiting");
                    crate::jsonlog::flush();
                    std::process::exit(0);
                }
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start the shutdown watcher; shutdown waits the full grace period");
    }
}
