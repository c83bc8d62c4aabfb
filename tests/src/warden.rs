//! Starting and driving the real `warden` binary.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Once;
use std::time::{Duration, Instant};

static BUILD: Once = Once::new();

/// The release `warden` binary. `cargo test --workspace` builds it (the `warden` package's
/// own integration tests need it); when it is missing it is built here, once. `WARDEN_BIN`
/// overrides the path.
pub fn binary() -> PathBuf {
    if let Ok(p) = std::env::var("WARDEN_BIN") {
        return PathBuf::from(p);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf();
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root.join("target"));
    let bin = target.join("release").join("warden");
    BUILD.call_once(|| {
        if bin.exists() {
            return;
        }
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "--release", "--workspace", "--bin", "warden"])
            .current_dir(&root)
            .status()
            .expect("run cargo build");
        assert!(status.success(), "building warden failed");
    });
    bin
}

/// A running Warden with its own temp dir, conf file and ports.
pub struct Warden {
    pub child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub conf_path: PathBuf,
    pub http: u16,
    pub https: u16,
    pub admin: u16,
}

/// Ports and a directory for a Warden that is about to start; `render` fills a conf template.
pub struct Setup {
    pub dir: tempfile::TempDir,
    pub http: u16,
    pub https: u16,
    pub admin: u16,
}

impl Default for Setup {
    fn default() -> Self {
        Self::new()
    }
}

impl Setup {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("tempdir"),
            http: crate::free_port(),
            https: crate::free_port(),
            admin: crate::free_port(),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Replaces `${HTTP}`, `${HTTPS}`, `${ADMIN}` (addresses) and `${DIR}` in a conf template,
    /// then each `${KEY}` of `vars`.
    pub fn render(&self, template: &str, vars: &[(&str, String)]) -> String {
        render(
            template,
            [self.http, self.https, self.admin],
            self.dir.path(),
            vars,
        )
    }

    /// Writes the conf and starts Warden, returning once `/readyz` says ready.
    pub async fn start(self, template: &str, vars: &[(&str, String)]) -> Warden {
        let mut w = self.spawn_unready(template, vars);
        w.wait_ready().await;
        w
    }

    /// Writes the conf and starts Warden without waiting for it to become ready (for tests of
    /// readiness itself).
    pub fn spawn_unready(self, template: &str, vars: &[(&str, String)]) -> Warden {
        let conf = self.render(template, vars);
        let conf_path = self.path("warden.yaml");
        std::fs::write(&conf_path, conf).expect("write conf");
        let mut w = Warden {
            child: None,
            http: self.http,
            https: self.https,
            admin: self.admin,
            conf_path,
            dir: self.dir,
        };
        w.spawn();
        w
    }
}

fn render(template: &str, ports: [u16; 3], dir: &Path, vars: &[(&str, String)]) -> String {
    let [http, https, admin] = ports;
    let mut s = template
        .replace("${HTTP}", &format!("127.0.0.1:{http}"))
        .replace("${HTTPS}", &format!("127.0.0.1:{https}"))
        .replace("${ADMIN}", &format!("127.0.0.1:{admin}"))
        .replace("${DIR}", &dir.display().to_string());
    for (k, v) in vars {
        s = s.replace(&format!("${{{k}}}"), v);
    }
    assert!(!s.contains("${"), "unfilled placeholder in conf:\n{s}");
    s
}

impl Warden {
    /// Fills a conf template for this Warden, as [`Setup::render`] does.
    pub fn render(&self, template: &str, vars: &[(&str, String)]) -> String {
        render(
            template,
            [self.http, self.https, self.admin],
            self.dir.path(),
            vars,
        )
    }

    pub(crate) fn spawn(&mut self) {
        let out = std::fs::File::create(self.dir.path().join("stdout.log")).expect("stdout log");
        let err = std::fs::File::create(self.dir.path().join("stderr.log")).expect("stderr log");
        let child = Command::new(binary())
            .args(["run", "-c"])
            .arg(&self.conf_path)
            .env(
                "WARDEN_LOG",
                std::env::var("WARDEN_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("start warden");
        self.child = Some(child);
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.http)
    }

    pub fn https_url(&self, host: &str, path: &str) -> String {
        format!("https://{host}:{}{path}", self.https)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.admin)
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().map(|c| c.id() as i32).expect("running")
    }

    /// Polls `/readyz` (the readiness probe, as Kubernetes would) until it answers 200.
    pub async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = crate::client();
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "warden exited with {status} before becoming ready:\n{}",
                    self.stderr()
                );
            }
            if let Ok(r) = client.get(self.admin_url("/readyz")).send().await {
                if r.status() == 200 {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "warden not ready in 30s:\n{}",
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub fn stderr(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(self.dir.path().join("stderr.log")) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// Access log lines written so far, parsed.
    pub fn access_log(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.dir.path().join("stdout.log"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Waits until an access log line satisfies `pred` (lines are written asynchronously).
    pub async fn wait_access_log(
        &self,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(l) = self.access_log().into_iter().find(|l| pred(l)) {
                return l;
            }
            assert!(
                Instant::now() < deadline,
                "no matching access log line in:\n{:?}",
                self.access_log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Replaces the conf file's contents (without reloading).
    pub fn write_conf(&self, conf: &str) {
        // Write then rename, as editors and ConfigMaps do: the watcher must never see half a file.
        let tmp = self.dir.path().join("warden.yaml.tmp");
        std::fs::write(&tmp, conf).expect("write conf");
        std::fs::rename(&tmp, &self.conf_path).expect("rename conf");
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), sig).expect("signal warden");
    }

    /// The current conf generation from `/metrics`.
    pub async fn generation(&self) -> i64 {
        self.metric("warden_config_generation")
            .await
            .unwrap_or(-1.0) as i64
    }

    /// Sum of a metric's samples whose line contains every string in `labels`.
    pub async fn metric_with(&self, name: &str, labels: &[&str]) -> Option<f64> {
        let text = crate::client()
            .get(self.admin_url("/metrics"))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        metric_sum(&text, name, labels)
    }

    pub async fn metric(&self, name: &str) -> Option<f64> {
        self.metric_with(name, &[]).await
    }

    /// Waits until the metric (as [`Warden::metric_with`] sums it) has the value `want`.
    pub async fn wait_metric(&self, name: &str, labels: &[&str], want: f64) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let now = self.metric_with(name, labels).await;
            if now == Some(want) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{name}{labels:?} is {now:?}, not {want}, after 15s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits for the process to exit and returns its exit code.
    pub fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        let child = self.child.as_mut()?;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return status.code();
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Warden {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// In Prometheus text `text`, the sum of metric `name`'s samples whose line contains every
/// string in `labels` (`key="value"`); `None` when there is none.
pub fn metric_sum(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    let mut found = None;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((key, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let bare = key.split('{').next().unwrap_or(key);
        if bare == name && labels.iter().all(|l| key.contains(l)) {
            if let Ok(v) = value.parse::<f64>() {
                *found.get_or_insert(0.0) += v;
            }
        }
    }
    found
}
