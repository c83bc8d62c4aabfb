use super::driver::Registry;
use super::spec::{ChurnAction, Figure, ProcessKind};
use super::*;
use crate::generator::{Length, Mode};
use std::time::Duration;

fn errors(src: &str) -> Vec<String> {
    match parse(src, "s.yaml", Path::new("/base")) {
        Ok(_) => panic!("expected errors for:\n{src}"),
        Err(errs) => errs.iter().map(ToString::to_string).collect(),
    }
}

const MINIMAL: &str = "\
name: tiny
target: { url: 'http://127.0.0.1:9000/' }
phases:
  - { name: load, rate: 100, duration: 1s }
";

#[test]
fn a_minimal_scenario_gets_defaults() {
    let p = parse(MINIMAL, "s.yaml", Path::new("/base")).unwrap();
    assert_eq!(p.name, "tiny");
    let ph = &p.phases[0];
    assert_eq!(ph.mode, Mode::Open { rate: 100.0 });
    assert_eq!(ph.length, Length::Duration(Duration::from_secs(1)));
    assert_eq!((ph.connections, ph.threads, ph.http2), (50, 1, false));
    assert_eq!(ph.expect.to_string(), "2xx");
    assert_eq!(ph.timeout, plan::DEFAULT_TIMEOUT);
    assert_eq!(p.report, Figure::ALL.to_vec());
}

#[test]
fn phases_inherit_the_target_and_override_it() {
    let src = "\
name: merge
target:
  url: http://127.0.0.1:9000/a
  headers: { Host: a.test, X-Run: one }
  tokens: { file: tokens.txt }
  expect_status: [200, 3xx]
  http2: true
phases:
  - name: first
    closed_loop: true
    requests: 500
    headers: { host: b.test }
  - name: second
    rate: 10
    duration: 2s
    url: http://127.0.0.1:9001/b
    tokens: { file: /abs/cookies.txt, header: Cookie }
    expect_status: ['204']
    http2: false
";
    let p = parse(src, "s.yaml", Path::new("/base")).unwrap();
    let (a, b) = (&p.phases[0], &p.phases[1]);
    assert_eq!(a.mode, Mode::Closed);
    assert_eq!(a.length, Length::Requests(500));
    let headers: Vec<(String, String)> = a
        .headers
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_string()))
        .collect();
    assert_eq!(
        headers,
        [
            ("x-run".to_string(), "one".to_string()),
            ("host".to_string(), "b.test".to_string())
        ]
    );
    assert_eq!(a.tokens.as_ref().unwrap().0, Path::new("/base/tokens.txt"));
    assert_eq!(a.tokens.as_ref().unwrap().1, "authorization");
    assert_eq!(a.expect.to_string(), "200,3xx");
    assert!(a.http2);
    assert_eq!(b.url, "http://127.0.0.1:9001/b");
    assert_eq!(b.tokens.as_ref().unwrap().0, Path::new("/abs/cookies.txt"));
    assert_eq!(b.tokens.as_ref().unwrap().1, "cookie");
    assert_eq!(b.expect.to_string(), "204");
    assert!(!b.http2);
}

#[test]
fn processes_churn_and_assertions_parse() {
    let src = "\
name: full
processes:
  - { name: up, kind: upstream, listen: '127.0.0.1:9001', measure: true }
  - { name: gw, kind: warden, conf: w.yaml, ready: 'http://127.0.0.1:9901/readyz', ready_timeout: 30s }
  - { name: tool, kind: command, command: [sleep, '60'], env: { A: b } }
target: { url: 'http://127.0.0.1:9000/', tokens: { file: t.txt } }
phases:
  - { name: warm, warmup: true, rate: 10, duration: 1s }
  - { name: load, rate: 100, duration: 5s }
churn:
  - { action: kill_restart_upstream, every: 2s, process: up, phases: [load] }
  - { action: revoke_sessions, every: 500ms, params: { fraction: 0.5 } }
assertions:
  max_5xx: 0
  no_success_after_revoke: true
  recovery_within: 1s
  no_false_401: true
report: [rps, p99, cpu_per_request]
";
    let p = parse(src, "s.yaml", Path::new("/base")).unwrap();
    assert_eq!(p.processes[1].kind, ProcessKind::Warden);
    assert_eq!(
        p.processes[1].conf.as_ref().unwrap().path(),
        Path::new("/base/w.yaml")
    );
    assert_eq!(p.processes[1].ready_timeout.get(), Duration::from_secs(30));
    assert_eq!(p.processes[2].command, ["sleep", "60"]);
    assert_eq!(p.churn[0].action, ChurnAction::KillRestartUpstream);
    assert_eq!(p.churn[1].every.get(), Duration::from_millis(500));
    assert_eq!(p.churn[1].params["fraction"], serde_json::json!(0.5));
    assert_eq!(p.assertions.max_5xx, Some(0));
    assert_eq!(p.report, [Figure::Rps, Figure::P99, Figure::CpuPerRequest]);
    assert!(Registry::builtin().missing(&p).is_empty());
    assert_eq!(
        Registry::empty().missing(&p),
        [
            "process kind `upstream` (up)",
            "process kind `warden` (gw)",
            "process kind `command` (tool)",
            "churn action `kill_restart_upstream`",
            "churn action `revoke_sessions`"
        ]
    );
}

#[test]
fn unknown_keys_and_names_are_reported_with_their_position() {
    let src = "\
name: typo
target: { url: 'http://127.0.0.1:9000/' }
phases:
  - name: load
    rate: 100
    duraton: 1s
churn:
  - { action: restart_everything, every: 1s }
";
    let errs = errors(src);
    assert_eq!(errs.len(), 2, "{errs:#?}");
    assert!(
        errs[0].starts_with("s.yaml:6:5: phases[0].duraton: unknown field"),
        "{}",
        errs[0]
    );
    assert!(
        errs[1].starts_with("s.yaml:8:15: churn[0].action:"),
        "{}",
        errs[1]
    );
    assert!(
        errs[1].contains("revoke_sessions"),
        "the valid actions are listed: {}",
        errs[1]
    );
}

#[test]
fn every_semantic_problem_is_reported_at_once() {
    let src = "\
name: ''
processes:
  - { name: a, kind: command }
  - { name: a, kind: warden }
  - { name: up, kind: upstream, listen: nowhere, ready: 'https://x/' }
phases:
  - { name: p, rate: 0, duration: 1s }
  - { name: p, closed_loop: true, rate: 5, requests: 3, duration: 1s, connections: 0 }
  - { name: q, duration: 1s, url: 'ftp://x/' }
churn:
  - { action: kill_restart_upstream, every: 0s, phases: [nope] }
assertions:
  no_success_after_revoke: true
  recovery_within: 2s
  no_false_401: true
  max_errors: 0
";
    let errs = errors(src);
    let expect = [
        "s.yaml:1:7: name: the scenario needs a name",
        "s.yaml:3:5: processes[0].command: a `command` process needs `command: [program, args...]`",
        "s.yaml:4:5: processes[1].conf: a `warden` process needs `conf: FILE` (relative to the scenario file)",
        "s.yaml:4:13: processes[1].name: another process is already named `a`; names must be unique",
        "s.yaml:5:41: processes[2].listen: `nowhere` is not an address like 127.0.0.1:8080",
        "s.yaml:5:57: processes[2].ready: `https://x/`: only http:// is supported (the generator does not speak TLS)",
        "s.yaml:7:5: phases[0]: no URL: set `target.url` or this phase's `url`",
        "s.yaml:7:22: phases[0].rate: must be a positive number of requests per second",
        "s.yaml:8:5: phases[1]: no URL: set `target.url` or this phase's `url`",
        "s.yaml:8:13: phases[1].name: another phase is already named `p`; names must be unique",
        "s.yaml:8:41: phases[1].rate: give either `rate` (open loop) or `closed_loop: true`, not both",
        "s.yaml:8:54: phases[1].requests: give either `duration` or `requests`, not both",
        "s.yaml:8:84: phases[1].connections: must be at least 1",
        "s.yaml:9:5: phases[2]: needs `rate: RPS` (open loop) or `closed_loop: true`",
        "s.yaml:9:35: phases[2].url: `ftp://x/`: only http:// is supported (the generator does not speak TLS)",
        "s.yaml:11:5: churn[0]: `kill_restart_upstream` needs `process: NAME` of the upstream to kill",
        "s.yaml:11:45: churn[0].every: the period must be longer than zero",
        "s.yaml:11:58: churn[0].phases[0]: no phase is named `nope`",
        "s.yaml:13:28: assertions.no_success_after_revoke: needs a `revoke_sessions` churn action: nothing is revoked otherwise",
        "s.yaml:15:17: assertions.no_false_401: needs credentials: `tokens` on the target or a phase, or `login_new_sessions`",
    ];
    assert_eq!(errs, expect);
}

#[test]
fn a_scenario_that_only_warms_up_is_refused() {
    let src = "\
name: idle
target: { url: 'http://127.0.0.1:9000/' }
phases:
  - { name: w, warmup: true, rate: 1, duration: 1s }
";
    assert_eq!(
        errors(src),
        ["s.yaml:3:1: phases: every phase is a warm-up: at least one must be measured"]
    );
}

#[test]
fn bad_values_say_what_was_expected() {
    let src = "\
name: values
target: { url: 'http://127.0.0.1:9000/', expect_status: [200, 7xx], headers: { 'bad header': x } }
phases:
  - { name: p, rate: fast, duration: soon }
";
    let errs = errors(src);
    assert_eq!(errs.len(), 2, "{errs:#?}");
    assert!(
        errs[0].starts_with("s.yaml:4:22: phases[0].rate:"),
        "{}",
        errs[0]
    );
    assert!(
        errs[1].starts_with("s.yaml:4:38: phases[0].duration:"),
        "{}",
        errs[1]
    );
    let src = "\
name: values
target: { url: 'http://127.0.0.1:9000/', expect_status: [200, 7xx], headers: { 'bad header': x } }
phases:
  - { name: p, rate: 5, duration: 1s, tokens: { file: t, header: x-api-key } }
";
    let errs = errors(src);
    assert_eq!(
        errs,
        [
            "s.yaml:2:57: target.expect_status: `7xx` is not a status: expected codes like `200` or classes like `2xx`, comma-separated",
            "s.yaml:2:94: target.headers.bad header: `bad header` is not a header name",
            "s.yaml:4:66: phases[0].tokens.header: `x-api-key`: tokens go in `authorization` or `cookie`",
        ]
    );
}

#[test]
fn every_shipped_scenario_parses() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let sc = load(&path).unwrap_or_else(|e| panic!("{}: {e:#?}", path.display()));
            let text = describe::describe(&sc, &Registry::builtin());
            assert!(text.contains(&sc.plan.name));
            n += 1;
        }
    }
    assert!(n >= 4, "found {n} scenarios");
}

#[test]
fn a_missing_file_is_one_clear_error() {
    let errs = load(Path::new("/no/such/scenario.yaml")).unwrap_err();
    assert_eq!(errs.len(), 1);
    assert!(errs[0]
        .to_string()
        .contains("cannot read the scenario file"));
}

#[test]
fn a_process_can_run_in_the_background_and_nothing_else() {
    let src = "\
name: prio
processes:
  - { name: idp, kind: oidc, listen: '127.0.0.1:9002', priority: background }
  - { name: up, kind: upstream, listen: '127.0.0.1:9001' }
target: { url: 'http://127.0.0.1:9000/' }
phases:
  - { name: load, rate: 100, duration: 1s }
";
    let p = parse(src, "s.yaml", Path::new("/base")).unwrap();
    assert_eq!(p.processes[0].priority, spec::Priority::Background);
    assert_eq!(p.processes[1].priority, spec::Priority::Normal);
    let errs = errors(&src.replace("priority: background", "priority: low"));
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(errs[0].starts_with("s.yaml:3:"), "{}", errs[0]);
    assert!(errs[0].contains("processes[0].priority"), "{}", errs[0]);
}

#[test]
fn pin_moves_every_thread_of_a_process_to_the_cpus_given() {
    let mut child = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    let pid = child.id();
    let result = super::runner::pin(pid, "0");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let bad = super::runner::pin(pid, "100000");
    child.kill().unwrap();
    child.wait().unwrap();
    result.unwrap();
    let allowed = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .unwrap();
    assert_eq!(allowed.trim(), "0");
    let e = bad.unwrap_err();
    assert!(e.contains("taskset --cpu-list 100000"), "{e}");
}
