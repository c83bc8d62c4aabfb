//! `warden migrate-ingress` golden tests: each `tests/golden/migrate/NN-*.yaml` (Ingress
//! manifests) is translated; the conf on stdout must equal `NN-*.out.yaml`, the report on stderr
//! `NN-*.report.txt` (`UPDATE_GOLDEN=1` rewrites them after a deliberate change), and the conf
//! must pass `warden check` with the TLS Secrets it names in place.

use std::path::{Path, PathBuf};
use std::process::Command;

const TLS_DIR: &str = "/etc/warden/tls/";

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("golden/migrate")
}

fn inputs() -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(golden_dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml") && !n.ends_with(".out.yaml"))
        .collect();
    files.sort();
    files
}

fn migrate(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(warden_tests::warden::binary())
        .arg("migrate-ingress")
        .args(args)
        .current_dir(golden_dir())
        .output()
        .expect("run warden migrate-ingress");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `warden check` on `conf` with every certificate it references created under a temp dir.
fn check(conf: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let tls = dir.path().join("tls");
    let conf = conf.replace(TLS_DIR, &format!("{}/", tls.display()));
    let dev = Path::new(env!("CARGO_MANIFEST_DIR")).join("../conf/dev");
    for line in conf.lines() {
        for (field, file) in [("cert: ", "localhost.crt"), ("key: ", "localhost.key")] {
            if let Some(p) = line.trim().strip_prefix(field) {
                let p = Path::new(p.trim_matches('"'));
                std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                std::fs::copy(dev.join(file), p).unwrap();
            }
        }
    }
    let path = dir.path().join("warden.yaml");
    std::fs::write(&path, &conf).unwrap();
    let out = Command::new(warden_tests::warden::binary())
        .args(["check", "-c"])
        .arg(&path)
        .output()
        .expect("run warden check");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn golden_migrations() {
    let files = inputs();
    assert!(
        files.len() >= 6,
        "at least six kinds of Ingress are covered"
    );
    let update = std::env::var("UPDATE_GOLDEN").is_ok();
    let mut failures = Vec::new();
    for f in &files {
        let (code, conf, report) = migrate(&[f]);
        assert_eq!(code, 0, "{f}: exit {code}\n{report}");
        let stem = f.trim_end_matches(".yaml");
        let (conf_file, report_file) = (
            golden_dir().join(format!("{stem}.out.yaml")),
            golden_dir().join(format!("{stem}.report.txt")),
        );
        if update {
            std::fs::write(&conf_file, &conf).unwrap();
            std::fs::write(&report_file, &report).unwrap();
        } else {
            for (file, got) in [(&conf_file, &conf), (&report_file, &report)] {
                let want = std::fs::read_to_string(file)
                    .unwrap_or_else(|_| panic!("{} missing", file.display()));
                if &want != got {
                    failures.push(format!(
                        "--- {}\nexpected:\n{want}\ngot:\n{got}",
                        file.display()
                    ));
                }
            }
        }
        let (code, out) = check(&conf);
        assert_eq!(
            (code, out.trim_end()),
            (0, "ok"),
            "{f}: the conf fails warden check:\n{conf}"
        );
        // Every route is public as under ingress-nginx, and each says so where it is set.
        let routes = conf.lines().filter(|l| l.starts_with("  - name:")).count();
        let marked = conf
            .lines()
            .filter(|l| l.trim_start() == "public: true # MIGRATED-PUBLIC: replace with `auth` and a `policy` to protect it")
            .count();
        let public = conf.lines().filter(|l| l.contains("public:")).count();
        assert_eq!(
            (marked, public),
            (routes, routes),
            "{f}: every route is marked public"
        );
        assert!(
            routes == 0 || report.contains("every route is public"),
            "{f}: the report says so"
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn several_files_make_one_conf_and_output_goes_to_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("warden.yaml");
    let (code, stdout, report) = migrate(&[
        "01-shop-tls.yaml",
        "04-protocols-affinity.yaml",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{report}");
    assert!(stdout.is_empty(), "the conf went to the file");
    let conf = std::fs::read_to_string(&out).unwrap();
    assert!(conf.contains("shop-storefront-1") && conf.contains("orders-orders-grpc-1"));
    assert!(report.contains("shop/storefront") && report.contains("auth/keycloak"));
    assert_eq!(check(&conf).1.trim_end(), "ok");
}

#[test]
fn unreadable_or_empty_input_fails() {
    let (code, _, err) = migrate(&["does-not-exist.yaml"]);
    assert_eq!(code, 1);
    assert!(err.contains("cannot read does-not-exist.yaml"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let none = dir.path().join("svc.yaml");
    std::fs::write(
        &none,
        "apiVersion: v1\nkind: Service\nmetadata: { name: a }\n",
    )
    .unwrap();
    let (code, _, err) = migrate(&[none.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("no Ingress found"), "{err}");

    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "kind: Ingress\nmetadata: [\n").unwrap();
    let (code, _, err) = migrate(&[bad.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
}
