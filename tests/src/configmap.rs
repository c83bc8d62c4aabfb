//! A conf mounted the way the kubelet mounts a ConfigMap: `warden.yaml` → `..data/warden.yaml`,
//! `..data` → `..<timestamp>/`, and an update writes a new timestamped directory, swaps the
//! `..data` link atomically and deletes the old directory.

use crate::warden::{Setup, Warden};
use std::os::unix::fs::symlink;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};

static VERSION: AtomicU32 = AtomicU32::new(0);

fn version_dir(mount: &Path, conf: &str) -> String {
    let name = format!(
        "..2026_11_27_00_00_{:02}",
        VERSION.fetch_add(1, Ordering::Relaxed)
    );
    std::fs::create_dir(mount.join(&name)).expect("version dir");
    std::fs::write(mount.join(&name).join("warden.yaml"), conf).expect("conf");
    name
}

impl Setup {
    /// Lays the conf out as a ConfigMap volume under `DIR/conf` and starts Warden on it.
    pub async fn start_configmap(self, template: &str, vars: &[(&str, String)]) -> Warden {
        let conf = self.render(template, vars);
        let mount = self.path("conf");
        std::fs::create_dir(&mount).expect("mount dir");
        let first = version_dir(&mount, &conf);
        symlink(&first, mount.join("..data")).expect("..data link");
        symlink("..data/warden.yaml", mount.join("warden.yaml")).expect("conf link");
        let mut w = Warden {
            child: None,
            http: self.http,
            https: self.https,
            admin: self.admin,
            conf_path: mount.join("warden.yaml"),
            dir: self.dir,
        };
        w.spawn();
        w.wait_ready().await;
        w
    }
}

impl Warden {
    /// Updates the ConfigMap volume as the kubelet does.
    pub fn update_configmap(&self, conf: &str) {
        let mount = self.dir.path().join("conf");
        let old = std::fs::read_link(mount.join("..data")).expect("..data link");
        let new = version_dir(&mount, conf);
        symlink(&new, mount.join("..data_tmp")).expect("new link");
        std::fs::rename(mount.join("..data_tmp"), mount.join("..data")).expect("swap link");
        std::fs::remove_dir_all(mount.join(old)).expect("remove old version");
    }
}
