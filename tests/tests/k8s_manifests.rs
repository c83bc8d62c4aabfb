//! The kustomize base in `k8s/`: rendered with `kubectl kustomize` (skipped with a message when
//! kubectl is missing), then checked for what keeps Warden available and contained — probes on
//! the admin port, a grace period longer than preStop plus Warden's own, the restricted
//! security context, two replicas, PDB and HPA — and its ConfigMap's conf must pass
//! `warden check`. The monitoring files may only name metrics Warden defines.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use yaml_rust2::{Yaml, YamlLoader};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn kubectl() -> Option<PathBuf> {
    let p = std::env::var("KUBECTL").unwrap_or_else(|_| "/usr/bin/kubectl".into());
    Path::new(&p).exists().then(|| p.into())
}

fn rendered() -> Option<Vec<Yaml>> {
    let Some(k) = kubectl() else {
        eprintln!("kubectl not found (set KUBECTL): the kustomize checks are skipped");
        return None;
    };
    let out = Command::new(k)
        .arg("kustomize")
        .arg(root().join("k8s"))
        .output()
        .expect("run kubectl kustomize");
    assert!(
        out.status.success(),
        "kubectl kustomize failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(YamlLoader::load_from_str(&String::from_utf8_lossy(&out.stdout)).expect("yaml"))
}

fn find<'a>(docs: &'a [Yaml], kind: &str, name: &str) -> &'a Yaml {
    docs.iter()
        .find(|d| d["kind"].as_str() == Some(kind) && d["metadata"]["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("no {kind} {name} in the rendered base"))
}

/// Seconds of a Warden duration like `10s` or `1m`.
fn secs(d: &str) -> i64 {
    let (n, unit) = d.split_at(d.find(|c: char| !c.is_ascii_digit()).unwrap_or(d.len()));
    let n: i64 = n.parse().unwrap();
    match unit {
        "s" => n,
        "m" => n * 60,
        _ => panic!("unexpected duration {d}"),
    }
}

fn conf_text(docs: &[Yaml]) -> String {
    find(docs, "ConfigMap", "warden-conf")["data"]["warden.yaml"]
        .as_str()
        .expect("warden.yaml in the ConfigMap")
        .to_string()
}

fn conf(docs: &[Yaml]) -> Yaml {
    YamlLoader::load_from_str(&conf_text(docs))
        .unwrap()
        .remove(0)
}

#[test]
fn the_deployment_is_available_and_contained() {
    let Some(docs) = rendered() else { return };
    for d in &docs {
        let kind = d["kind"].as_str().unwrap();
        let ns = d["metadata"]["namespace"].as_str();
        if !matches!(kind, "Namespace" | "ClusterRole" | "ClusterRoleBinding") {
            assert_eq!(ns, Some("warden"), "{kind} is in the warden namespace");
        }
    }
    let dep = find(&docs, "Deployment", "warden");
    assert_eq!(dep["spec"]["replicas"].as_i64(), Some(2));
    let pod = &dep["spec"]["template"]["spec"];
    let c = &pod["containers"][0];

    // Probes: /readyz and /healthz on the admin port, which the conf binds on all interfaces.
    let port_of = |name: &str| {
        c["ports"]
            .as_vec()
            .unwrap()
            .iter()
            .find(|p| p["name"].as_str() == Some(name))
            .and_then(|p| p["containerPort"].as_i64())
            .unwrap_or_else(|| panic!("no container port {name}"))
    };
    assert_eq!(
        c["readinessProbe"]["httpGet"]["path"].as_str(),
        Some("/readyz")
    );
    assert_eq!(
        c["readinessProbe"]["httpGet"]["port"].as_str(),
        Some("admin")
    );
    assert_eq!(
        c["livenessProbe"]["httpGet"]["path"].as_str(),
        Some("/healthz")
    );
    assert_eq!(
        c["livenessProbe"]["httpGet"]["port"].as_str(),
        Some("admin")
    );
    let conf = conf(&docs);
    assert_eq!(
        conf["admin"]["listen"].as_str(),
        Some(format!("0.0.0.0:{}", port_of("admin")).as_str()),
        "the kubelet reaches the admin listener"
    );
    assert!(
        conf["admin"]["token_file"].as_str().is_some(),
        "/admin/* stays token-protected"
    );
    assert_eq!(
        conf["listen"]["http"].as_str(),
        Some(format!("0.0.0.0:{}", port_of("http")).as_str())
    );
    assert_eq!(
        conf["listen"]["https"].as_str(),
        Some(format!("0.0.0.0:{}", port_of("https")).as_str())
    );

    // Shutdown: SIGKILL only after preStop and Warden's grace period.
    let grace = secs(conf["server"]["grace_period"].as_str().unwrap_or("10s"));
    let pre_stop = c["lifecycle"]["preStop"]["sleep"]["seconds"]
        .as_i64()
        .expect("preStop sleep");
    let termination = pod["terminationGracePeriodSeconds"].as_i64().unwrap();
    assert!(
        termination > grace + pre_stop,
        "terminationGracePeriodSeconds {termination} must exceed grace_period {grace}s + preStop {pre_stop}s"
    );

    // Security context.
    let psc = &pod["securityContext"];
    assert_eq!(psc["runAsNonRoot"].as_bool(), Some(true));
    assert_eq!(
        psc["seccompProfile"]["type"].as_str(),
        Some("RuntimeDefault")
    );
    let sc = &c["securityContext"];
    assert_eq!(sc["allowPrivilegeEscalation"].as_bool(), Some(false));
    assert_eq!(sc["readOnlyRootFilesystem"].as_bool(), Some(true));
    assert_eq!(sc["runAsNonRoot"].as_bool(), Some(true));
    assert_eq!(
        sc["capabilities"]["drop"]
            .as_vec()
            .map(|v| v.iter().filter_map(Yaml::as_str).collect::<Vec<_>>()),
        Some(vec!["ALL"])
    );
    for k in ["requests", "limits"] {
        for r in ["cpu", "memory"] {
            assert!(c["resources"][k][r].as_str().is_some(), "resources.{k}.{r}");
        }
    }

    // Every file the conf names is in a mounted volume.
    let mounts: Vec<&str> = c["volumeMounts"]
        .as_vec()
        .unwrap()
        .iter()
        .filter_map(|m| m["mountPath"].as_str())
        .collect();
    for line in conf_text(&docs)
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
    {
        for word in line.split([' ', ',', '{', '}', '[', ']']) {
            if word.starts_with("/etc/") || word.starts_with("/var/") {
                assert!(
                    mounts.iter().any(|m| word.starts_with(&format!("{m}/"))),
                    "{word} is not in a mounted volume ({mounts:?})"
                );
            }
        }
    }
}

#[test]
fn service_pdb_hpa_and_rbac() {
    let Some(docs) = rendered() else { return };
    let dep = find(&docs, "Deployment", "warden");
    let pod_labels = &dep["spec"]["template"]["metadata"]["labels"];
    let container_port = |name: &str| {
        dep["spec"]["template"]["spec"]["containers"][0]["ports"]
            .as_vec()
            .unwrap()
            .iter()
            .find(|p| p["name"].as_str() == Some(name))
            .and_then(|p| p["containerPort"].as_i64())
            .unwrap()
    };
    let selects_pods = |sel: &Yaml| {
        sel.as_hash()
            .unwrap()
            .iter()
            .all(|(k, v)| &pod_labels[k.as_str().unwrap()] == v)
    };

    let svc = find(&docs, "Service", "warden");
    assert_eq!(svc["spec"]["type"].as_str(), Some("LoadBalancer"));
    assert!(selects_pods(&svc["spec"]["selector"]));
    let mut ports: Vec<(i64, i64)> = svc["spec"]["ports"]
        .as_vec()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["port"].as_i64().unwrap(),
                container_port(p["targetPort"].as_str().unwrap()),
            )
        })
        .collect();
    ports.sort();
    assert_eq!(
        ports,
        [(80, 8080), (443, 8443)],
        "only the proxy ports are public"
    );

    let pdb = find(&docs, "PodDisruptionBudget", "warden");
    assert_eq!(pdb["spec"]["minAvailable"].as_i64(), Some(1));
    assert!(selects_pods(&pdb["spec"]["selector"]["matchLabels"]));

    let hpa = find(&docs, "HorizontalPodAutoscaler", "warden");
    assert_eq!(
        hpa["spec"]["scaleTargetRef"]["kind"].as_str(),
        Some("Deployment")
    );
    assert_eq!(
        hpa["spec"]["scaleTargetRef"]["name"].as_str(),
        Some("warden")
    );
    assert!(hpa["spec"]["minReplicas"].as_i64().unwrap() >= 2);
    assert_eq!(
        hpa["spec"]["metrics"][0]["resource"]["name"].as_str(),
        Some("cpu")
    );

    let role = find(&docs, "ClusterRole", "warden-impersonator");
    let rules = role["rules"].as_vec().unwrap();
    assert!(rules
        .iter()
        .all(|r| r["verbs"].as_vec().unwrap() == &vec![Yaml::String("impersonate".into())]));
    let resources: BTreeSet<&str> = rules
        .iter()
        .flat_map(|r| r["resources"].as_vec().unwrap())
        .filter_map(Yaml::as_str)
        .collect();
    assert_eq!(resources, BTreeSet::from(["groups", "users"]));
    let groups = rules
        .iter()
        .find(|r| r["resources"][0].as_str() == Some("groups"))
        .unwrap();
    assert!(
        groups["resourceNames"].as_vec().is_some(),
        "groups are restricted by name"
    );
    let binding = find(&docs, "ClusterRoleBinding", "warden-impersonator");
    assert_eq!(
        binding["subjects"][0]["name"].as_str(),
        dep["spec"]["template"]["spec"]["serviceAccountName"].as_str()
    );
    assert_eq!(binding["subjects"][0]["namespace"].as_str(), Some("warden"));
}

#[test]
fn the_configmap_conf_passes_warden_check() {
    let Some(docs) = rendered() else { return };
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path();
    // The Secrets the Deployment mounts, mirrored under the temp dir.
    let conf = conf_text(&docs)
        .replace("/etc/warden/", &format!("{}/etc/warden/", base.display()))
        .replace("/var/run/", &format!("{}/var/run/", base.display()));
    let dev = root().join("conf/dev");
    let tls = base.join("etc/warden/tls");
    std::fs::create_dir_all(&tls).unwrap();
    std::fs::copy(dev.join("localhost.crt"), tls.join("tls.crt")).unwrap();
    std::fs::copy(dev.join("localhost.key"), tls.join("tls.key")).unwrap();
    let admin = base.join("etc/warden/secrets/admin");
    std::fs::create_dir_all(&admin).unwrap();
    std::fs::write(admin.join("token"), "test-admin-token\n").unwrap();
    let path = base.join("warden.yaml");
    std::fs::write(&path, conf).unwrap();
    let out = Command::new(warden_tests::warden::binary())
        .args(["check", "-c"])
        .arg(&path)
        .output()
        .expect("run warden check");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim_end(),
        "ok",
        "k8s/conf/warden.yaml fails warden check"
    );
}

/// Metric names the gateway will count but does not yet (with the reason).
const PLANNED: &[&str] = &[
    // The policy phase's decisions per route (`decision`: allow | deny).
    "warden_authz_total",
];

#[test]
fn monitoring_names_only_metrics_warden_defines() {
    let mut defined = String::new();
    for f in ["gateway/src/metrics.rs", "plugins/src/metrics.rs"] {
        defined.push_str(&std::fs::read_to_string(root().join(f)).unwrap());
    }
    let mut used = BTreeSet::new();
    for f in [
        "k8s/monitoring/prometheus-rules.yaml",
        "k8s/monitoring/grafana-dashboard.json",
    ] {
        let text = std::fs::read_to_string(root().join(f)).unwrap();
        let mut rest = text.as_str();
        while let Some(i) = rest.find("warden_") {
            let name: String = rest[i..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            rest = &rest[i + name.len()..];
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(&name)
                .to_string();
            used.insert(base);
        }
    }
    assert!(
        used.len() >= 10,
        "the dashboard and rules cover Warden's metrics: {used:?}"
    );
    for name in &used {
        assert!(
            defined.contains(&format!("\"{name}\"")) || PLANNED.contains(&name.as_str()),
            "{name} is not a metric of gateway/src/metrics.rs or plugins/src/metrics.rs"
        );
    }
    let dash: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("k8s/monitoring/grafana-dashboard.json")).unwrap(),
    )
    .unwrap();
    assert!(dash["panels"].as_array().unwrap().len() >= 8);
    let rules = YamlLoader::load_from_str(
        &std::fs::read_to_string(root().join("k8s/monitoring/prometheus-rules.yaml")).unwrap(),
    )
    .unwrap();
    let alerts: BTreeSet<&str> = rules[0]["spec"]["groups"]
        .as_vec()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_vec().unwrap())
        .filter_map(|r| r["alert"].as_str())
        .collect();
    for a in [
        "WardenConfigReloadFailing",
        "WardenNoHealthyUpstream",
        "WardenHigh5xxRatio",
        "WardenJwksRefreshFailing",
        "WardenAuthzDenialsSpike",
    ] {
        assert!(alerts.contains(a), "alert {a} missing");
    }
}

#[test]
fn the_authentication_config_trusts_wardens_assertion_issuer() {
    let text = std::fs::read_to_string(root().join("k8s/authentication-config.yaml")).unwrap();
    let doc = YamlLoader::load_from_str(&text).unwrap().remove(0);
    assert_eq!(doc["kind"].as_str(), Some("AuthenticationConfiguration"));
    let jwt = &doc["jwt"][0];
    let url = jwt["issuer"]["url"].as_str().unwrap();
    assert!(url.starts_with("https://"), "the API server requires https");
    let conf = std::fs::read_to_string(root().join("k8s/conf/warden.yaml")).unwrap();
    assert!(
        conf.contains(&format!("issuer: \"{url}\"")),
        "the conf's identity.assertion.issuer is exactly {url}"
    );
    assert!(jwt["issuer"]["audiences"]
        .as_vec()
        .is_some_and(|a| !a.is_empty()));
    assert_eq!(
        jwt["claimMappings"]["username"]["claim"].as_str(),
        Some("email")
    );
    assert!(
        jwt["claimMappings"]["username"]["prefix"]
            .as_str()
            .is_some(),
        "prefix is required with claim"
    );
    assert_eq!(
        jwt["claimMappings"]["groups"]["claim"].as_str(),
        Some("groups")
    );
    assert!(jwt["claimMappings"]["groups"]["prefix"].as_str().is_some());
}
