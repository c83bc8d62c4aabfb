//! The `warden` command line: exit codes and what it prints. (Being an integration test of the
//! `warden` package, this also makes `cargo test --workspace` build the `warden` binary the
//! end-to-end tests in `tests/` run.)

use std::process::Command;

fn warden(args: &[&str], dir: &std::path::Path) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_prints_ok_or_every_error_with_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("good.yaml"),
        "routes:\n  - { name: a, host: a.test, upstreams: [\"127.0.0.1:1\"], public: true }\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("bad.yaml"),
        "routes:\n  - { name: a, host: a.test, upstreams: [], lb: x }\n",
    )
    .unwrap();
    assert_eq!(
        warden(&["check", "-c", "good.yaml"], dir.path()),
        (0, "ok\n".into(), String::new())
    );
    let (code, out, _) = warden(&["check", "-c", "bad.yaml"], dir.path());
    assert_eq!(code, 1);
    assert!(out.starts_with("bad.yaml:2:"), "{out}");
    assert!(out.ends_with("error(s)\n"), "{out}");
}

#[test]
fn run_refuses_a_missing_or_broken_conf() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = warden(&["run", "-c", "missing.yaml"], dir.path());
    assert_eq!(code, 1);
    assert!(
        err.contains("missing.yaml") && err.contains("cannot read"),
        "{err}"
    );
}

#[test]
fn version_is_printed() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, _) = warden(&["--version"], dir.path());
    assert_eq!(code, 0);
    assert!(out.starts_with("warden "), "{out}");
}
