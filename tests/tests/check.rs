//! `warden check` golden tests: every file in `tests/golden/check/` is checked and the output
//! compared with its `.out` file (set `UPDATE_GOLDEN=1` to rewrite them after a deliberate
//! change). Also: every example in `conf/` passes.

use std::path::Path;
use std::process::Command;

fn run_check(dir: &Path, file: &str) -> (i32, String) {
    let out = Command::new(warden_tests::warden::binary())
        .args(["check", "-c", file])
        .current_dir(dir)
        .output()
        .expect("run warden check");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn golden_check_outputs() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("golden/check");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 10,
        "at least ten kinds of mistakes are covered"
    );
    let update = std::env::var("UPDATE_GOLDEN").is_ok();
    let mut failures = Vec::new();
    for f in &files {
        let (code, out) = run_check(&dir, f);
        let golden = dir.join(f.replace(".yaml", ".out"));
        let expected_code = if out.trim_end() == "ok" { 0 } else { 1 };
        assert_eq!(
            code, expected_code,
            "{f}: exit code {code} for output:\n{out}"
        );
        if update {
            std::fs::write(&golden, &out).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&golden)
            .unwrap_or_else(|_| panic!("{} missing", golden.display()));
        if want != out {
            failures.push(format!("--- {f}\nexpected:\n{want}\ngot:\n{out}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_example_conf_passes_check() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .join("conf");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap().filter_map(|e| e.ok()) {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.ends_with(".yaml") {
            continue;
        }
        let (code, out) = run_check(&dir, &name);
        assert_eq!(
            (code, out.trim_end()),
            (0, "ok"),
            "conf/{name} fails warden check"
        );
        n += 1;
    }
    assert!(n > 0, "conf/ has no example");
}

/// `conf/demo/warden.yaml` is a template that `conf/demo/run.sh` renders into a state
/// directory holding the issuer's JWKS, the admin token and the secrets: rendered the same
/// way, it passes.
#[test]
fn the_demo_conf_passes_check_once_rendered() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let state = tempfile::tempdir().unwrap();
    let jwks = r#"{"keys":[{"kty":"EC","crv":"P-256","alg":"ES256","kid":"demo",
        "x":"DZOAImCv8sQPcetL-zolHZwSdZ3in8cRpPb3owL0I_k",
        "y":"D8-BnJ04s_f84FbnMEl4-rIdKY78-nYWlAAJGWhIRNE"}]}"#;
    std::fs::write(state.path().join("jwks.json"), jwks).unwrap();
    std::fs::write(state.path().join("admin-token"), "demo-admin-token\n").unwrap();
    std::fs::write(state.path().join("cookie-secret"), [7u8; 48]).unwrap();
    std::fs::write(state.path().join("client-secret"), "demo-client-secret").unwrap();
    let template = std::fs::read_to_string(root.join("conf/demo/warden.yaml")).unwrap();
    let conf = template.replace("@STATE@", &state.path().display().to_string());
    assert!(!conf.contains('@'), "every placeholder is filled");
    std::fs::write(state.path().join("warden.yaml"), conf).unwrap();
    let (code, out) = run_check(state.path(), "warden.yaml");
    assert_eq!((code, out.trim_end()), (0, "ok"), "conf/demo/warden.yaml");
}
