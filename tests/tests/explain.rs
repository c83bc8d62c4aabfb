//! `warden explain` golden tests: each case runs the binary against
//! `tests/golden/explain/explain.yaml` and compares stdout with `<case>.out` (set
//! `UPDATE_GOLDEN=1` to rewrite them after a deliberate change) and the exit code with the
//! documented one (0 allow, 2 refused, 1 error). Tokens are checked with their own keys.

use std::path::{Path, PathBuf};
use std::process::Command;
use warden_tests::tokens::Issuer;

/// Before the contractors' `valid_until`.
const AT: &str = "2029-06-01T12:00:00Z";

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("golden/explain")
}

fn explain(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(warden_tests::warden::binary())
        .args(["explain", "-c", "explain.yaml"])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run warden explain");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn golden_explain_outputs() {
    let dir = golden_dir();
    let cases: &[(&str, i32, &[&str])] = &[
        (
            "allow-staff",
            0,
            &["--url", "https://app.test/docs", "--claims", "staff.json"],
        ),
        (
            "deny-wins-on-admin",
            2,
            &[
                "--url",
                "https://app.test/%61dmin/users",
                "--claims",
                "staff.json",
            ],
        ),
        (
            "allow-readonly-get",
            0,
            &["--url", "https://app.test/docs", "--claims", "reader.json"],
        ),
        (
            "default-deny-post",
            2,
            &[
                "--method",
                "post",
                "--url",
                "https://app.test/docs",
                "--claims",
                "reader.json",
            ],
        ),
        (
            "time-bounded-before",
            0,
            &[
                "--url",
                "https://app.test/docs",
                "--claims",
                "contractor.json",
            ],
        ),
        (
            "time-bounded-after",
            2,
            &[
                "--url",
                "https://app.test/docs",
                "--claims",
                "contractor.json",
                "--at",
                "2030-01-01T00:00:00Z",
            ],
        ),
        (
            "named-policy",
            2,
            &["--url", "https://eng.test/", "--claims", "staff.json"],
        ),
        (
            "client-cert-san",
            0,
            &[
                "--url",
                "https://builds.test/",
                "--claims",
                "staff.json",
                "--client-cert",
                "build-agent.pem",
            ],
        ),
        (
            "client-cert-missing",
            2,
            &["--url", "https://builds.test/", "--claims", "staff.json"],
        ),
        ("anonymous", 2, &["--url", "https://app.test/docs"]),
        ("public-route", 0, &["--url", "https://status.test/"]),
        ("no-route", 2, &["--url", "https://nowhere.test/"]),
    ];
    let update = std::env::var("UPDATE_GOLDEN").is_ok();
    let mut failures = Vec::new();
    for (name, want_code, args) in cases {
        let mut all: Vec<&str> = args.to_vec();
        if !all.contains(&"--at") {
            all.extend(["--at", AT]);
        }
        let (code, out, err) = explain(&dir, &all);
        assert_eq!(code, *want_code, "{name}: exit code\n{out}{err}");
        let golden = dir.join(format!("{name}.out"));
        if update {
            std::fs::write(&golden, &out).expect("write golden");
            continue;
        }
        let want = std::fs::read_to_string(&golden)
            .unwrap_or_else(|_| panic!("{} missing", golden.display()));
        if want != out {
            failures.push(format!("--- {name}\nexpected:\n{want}\ngot:\n{out}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_token_of_a_remote_issuer_is_decoded_and_flagged_unverified() {
    let issuer = Issuer::new("https://tokens.test");
    let token = issuer.token("sam", None, &["staff"]);
    let (code, out, err) = explain(
        &golden_dir(),
        &["--url", "https://app.test/docs", "--token", &token],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("signature NOT verified"), "{out}");
    assert!(out.contains("subject `sam`"), "{out}");
    assert!(!out.contains(&token), "the token is not echoed: {out}");
}

#[test]
fn a_token_of_a_local_issuer_is_verified() {
    let dir = tempfile::tempdir().expect("tempdir");
    let issuer = Issuer::new("https://tokens.test");
    issuer.write_jwks(&dir.path().join("jwks.json"));
    let conf = std::fs::read_to_string(golden_dir().join("explain.yaml"))
        .expect("conf")
        .replace(
            r#"jwks_url: "https://tokens.test/jwks.json""#,
            "jwks_file: jwks.json",
        );
    std::fs::write(dir.path().join("explain.yaml"), conf).expect("write conf");

    let good = issuer.token("sam", None, &["staff"]);
    let (code, out, err) = explain(
        dir.path(),
        &["--url", "https://app.test/docs", "--token", &good],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("signature verified"), "{out}");

    let forged = Issuer::new("https://tokens.test").token("sam", None, &["staff"]);
    let (code, out, err) = explain(
        dir.path(),
        &["--url", "https://app.test/docs", "--token", &forged],
    );
    assert_eq!(
        code, 1,
        "a token the issuer's keys do not verify is an error: {out}{err}"
    );
    assert!(err.contains("refused"), "{err}");
}

#[test]
fn unreadable_inputs_exit_1() {
    let dir = golden_dir();
    for args in [
        &["--url", "not a url"][..],
        &["--url", "https://app.test/", "--claims", "missing.json"],
        &["--url", "https://app.test/", "--token", "abc"],
    ] {
        let (code, _, err) = explain(&dir, args);
        assert_eq!(code, 1, "{args:?}: {err}");
        assert!(err.starts_with("warden explain: "), "{err}");
    }
}
