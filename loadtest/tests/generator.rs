//! The generator against the built-in upstream, in one process: every request answered,
//! counts and rates consistent. No timing assertions.

use http::Method;
use std::time::Duration;
use warden_loadtest::generator::target::Target;
use warden_loadtest::generator::{run, Length, Mode, RunConfig, Watched};
use warden_loadtest::status::ExpectStatus;
use warden_loadtest::upstream::Upstream;

fn config(up: &Upstream, mode: Mode, length: Length, http2: bool) -> RunConfig {
    let url = format!("http://{}/", up.addr);
    RunConfig {
        target: Target::new(&url, Method::GET, Vec::new(), None, http2).unwrap(),
        mode,
        length,
        warmup: Duration::from_millis(200),
        connections: 8,
        h2_connections: 2,
        threads: 2,
        timeout: Duration::from_secs(10),
        expect: ExpectStatus::default(),
        watch: vec![Watched {
            pid: std::process::id(),
            name: Some("test".into()),
        }],
        label: None,
    }
}

#[test]
fn open_loop_for_one_second_answers_every_request() {
    let up = Upstream::start("127.0.0.1:0".parse().unwrap(), 1).unwrap();
    let rate = 500.0;
    let cfg = config(
        &up,
        Mode::Open { rate },
        Length::Duration(Duration::from_secs(1)),
        false,
    );
    let r = run(&cfg).unwrap();
    // 200 ms of warm-up at 500/s, then exactly one second of the schedule.
    assert_eq!(r.warmup_requests, 100);
    assert_eq!(r.requests, 500);
    assert_eq!(r.responses, 500);
    assert_eq!(r.status.s2xx, 500);
    assert_eq!(r.errors.total, 0);
    assert_eq!(r.latency_us.count, 500);
    assert!(r.late.is_some());
    assert!(r.rps > 0.0 && r.elapsed_s > 0.0);
    assert!(
        (r.rps * r.elapsed_s - 500.0).abs() < 1e-6,
        "rps × elapsed = responses"
    );
    assert_eq!(r.processes.len(), 1);
    assert!(r.processes[0].rss_kib > 0);
    up.stop();
}

#[test]
fn closed_loop_by_request_count_over_http2() {
    let up = Upstream::start("127.0.0.1:0".parse().unwrap(), 1).unwrap();
    let cfg = config(&up, Mode::Closed, Length::Requests(2_000), true);
    let r = run(&cfg).unwrap();
    assert_eq!(r.requests, 2_000);
    assert_eq!(r.status.s2xx, 2_000);
    assert_eq!(r.errors.total, 0);
    assert!(r.late.is_none());
    assert_eq!(r.settings.http, "2");
    up.stop();
}

#[test]
fn a_closed_port_counts_connect_errors_and_unexpected_statuses_count_too() {
    // Bind then drop: nothing listens on the port afterwards.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/");
    let mut cfg = RunConfig {
        target: Target::new(&url, Method::GET, Vec::new(), None, false).unwrap(),
        mode: Mode::Open { rate: 200.0 },
        length: Length::Requests(20),
        warmup: Duration::ZERO,
        connections: 2,
        h2_connections: 1,
        threads: 1,
        timeout: Duration::from_secs(5),
        expect: ExpectStatus::default(),
        watch: Vec::new(),
        label: None,
    };
    let r = run(&cfg).unwrap();
    assert_eq!(r.requests, 20);
    assert_eq!(r.errors.connect, 20);
    assert_eq!(r.responses, 0);

    let up = Upstream::start("127.0.0.1:0".parse().unwrap(), 1).unwrap();
    cfg.target = Target::new(
        &format!("http://{}/", up.addr),
        Method::GET,
        Vec::new(),
        None,
        false,
    )
    .unwrap();
    cfg.expect = "204".parse().unwrap();
    let r = run(&cfg).unwrap();
    assert_eq!(r.status.s2xx, 20);
    assert_eq!(r.errors.unexpected_status, 20);
    up.stop();
}
