//! A scenario run end to end with the built-in drivers: the upstream as its own process
//! (the real `warden-loadtest` binary), one measured phase, the assertions judged.

use std::path::PathBuf;
use warden_loadtest::scenario::{self, driver, runner};

/// A port nothing listens on (bound, then released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn context(dir: &std::path::Path) -> driver::RunContext {
    driver::RunContext {
        placement: None,
        dir: dir.to_path_buf(),
        log_dir: dir.join("logs"),
        loadtest_bin: PathBuf::from(env!("CARGO_BIN_EXE_warden-loadtest")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn the_upstream_scenario_runs_and_passes() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let src = format!(
        "name: smoke
processes:
  - {{ name: up, kind: upstream, listen: '127.0.0.1:{port}', measure: true }}
target: {{ url: 'http://127.0.0.1:{port}/' }}
phases:
  - {{ name: warm, warmup: true, rate: 200, requests: 50 }}
  - {{ name: load, rate: 400, requests: 300, connections: 4 }}
assertions: {{ max_5xx: 0, max_errors: 0 }}
"
    );
    let path = dir.path().join("smoke.yaml");
    std::fs::write(&path, src).unwrap();
    let sc = scenario::load(&path).unwrap();
    let ctx = context(dir.path());
    let out = runner::run(&sc, &driver::Registry::builtin(), &ctx)
        .await
        .unwrap();
    assert!(out.passed(), "{out:#?}");
    assert_eq!(out.phases.len(), 2);
    let load = &out.phases[1].report;
    assert_eq!(load.requests, 300);
    assert_eq!(load.status.s2xx, 300);
    assert_eq!(load.processes[0].name.as_deref(), Some("up"));
    assert!(load.processes[0].rss_kib > 0);
    assert_eq!(out.assertions.len(), 2);
    // The upstream was stopped: its port is free again.
    assert!(std::net::TcpListener::bind(("127.0.0.1", port)).is_ok());
}

#[tokio::test]
async fn assertions_no_driver_judges_do_not_pass() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let up =
        warden_loadtest::upstream::Upstream::start(format!("127.0.0.1:{port}").parse().unwrap(), 1)
            .unwrap();
    let tokens = dir.path().join("t.txt");
    std::fs::write(&tokens, "Bearer a\nBearer b\n").unwrap();
    let src = format!(
        "name: judged
target: {{ url: 'http://127.0.0.1:{port}/', tokens: {{ file: t.txt }} }}
phases:
  - {{ name: load, rate: 200, requests: 20, connections: 2 }}
assertions: {{ no_false_401: true }}
"
    );
    let path = dir.path().join("judged.yaml");
    std::fs::write(&path, src).unwrap();
    let sc = scenario::load(&path).unwrap();
    let ctx = context(dir.path());
    let out = runner::run(&sc, &driver::Registry::builtin(), &ctx)
        .await
        .unwrap();
    assert_eq!(out.phases[0].report.status.s2xx, 20);
    assert_eq!(out.phases[0].report.settings.tokens, 2);
    assert_eq!(out.assertions[0].verdict, "not_evaluated");
    assert!(!out.passed());
    up.stop();
}
