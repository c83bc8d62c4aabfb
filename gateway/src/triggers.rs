//! What starts a reload besides the admin API: SIGHUP and changes to the conf file or to the
//! TLS certificates it names.

use crate::state::State;
use notify::{RecursiveMode, Watcher};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Reloads on SIGHUP. Installing the handler also replaces SIGHUP's default action (exit).
pub fn on_sighup(state: Arc<State>) -> std::io::Result<()> {
    let _guard = crate::background::handle().enter();
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    crate::background::spawn(async move {
        while hup.recv().await.is_some() {
            let _ = state.reload("sighup").await;
        }
    });
    Ok(())
}

/// Reloads when the conf file or a TLS certificate changes. Directories are watched, not
/// files: editors and Kubernetes ConfigMap and Secret volumes replace files (rename, symlink
/// swap) rather than write them. The directory named in a path is watched as written, because
/// a volume's `..data` link is swapped there and the directory it pointed to is deleted
/// (watching the resolved path would see only the first update); for the conf file the
/// resolved directory is watched too when it differs, for a conf that is a symlink to a file
/// elsewhere. Events are debounced. A change to a certificate always reloads (the conf text
/// is the same, the files it names are not); a change to the conf reloads when its text
/// changed. Changes to other files in those directories (a log written next to the conf)
/// are ignored, or every write would make Warden re-read its conf.
pub fn watch_file(state: Arc<State>) -> notify::Result<()> {
    let written = parent(&state.conf_path);
    let resolved = state.conf_path.canonicalize().ok().map(|p| parent(&p));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Vec<PathBuf>>();
    let mut watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
        if let Ok(ev) = ev {
            if !ev.kind.is_access() {
                let _ = tx.send(ev.paths);
            }
        }
    })?;
    watcher.watch(&written, RecursiveMode::NonRecursive)?;
    if let Some(dir) = resolved.filter(|d| d.canonicalize().ok() != written.canonicalize().ok()) {
        if let Err(e) = watcher.watch(&dir, RecursiveMode::NonRecursive) {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot watch the conf file's target directory");
        }
    }
    let conf = ConfFiles::new(&state.conf_path);
    let mut certs = CertFiles::default();
    watch_cert_dirs(&state, &mut watcher, &mut certs, &written);
    crate::background::spawn(async move {
        while let Some(paths) = rx.recv().await {
            let mut certs_changed = certs.touched_by(&paths);
            if !certs_changed && !conf.touched_by(&paths) {
                continue;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
            while let Ok(paths) = rx.try_recv() {
                certs_changed |= certs.touched_by(&paths);
            }
            let trigger = if certs_changed {
                "certificates"
            } else {
                "file"
            };
            let _ = state.reload(trigger).await;
            watch_cert_dirs(&state, &mut watcher, &mut certs, &written);
        }
    });
    Ok(())
}

fn parent(p: &Path) -> PathBuf {
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => ".".into(),
    }
}

/// The names under which the conf file can change: its own and, when it is a symlink, its
/// target's.
struct ConfFiles {
    names: Vec<std::ffi::OsString>,
}

impl ConfFiles {
    fn new(conf_path: &Path) -> Self {
        let mut names: Vec<std::ffi::OsString> = Vec::new();
        let resolved = conf_path.canonicalize().ok();
        for p in std::iter::once(conf_path).chain(resolved.as_deref()) {
            if let Some(n) = p.file_name() {
                if !names.iter().any(|m| m == n) {
                    names.push(n.to_owned());
                }
            }
        }
        Self { names }
    }

    /// Whether an event may have changed the conf: the file itself (written, or renamed onto
    /// by an editor), a Kubernetes volume's `..data` / `..<timestamp>` entries, or an event
    /// that names no file (the watcher lost events and asks for a rescan).
    fn touched_by(&self, paths: &[PathBuf]) -> bool {
        paths.is_empty()
            || paths.iter().any(|p| match p.file_name() {
                Some(n) => {
                    self.names.iter().any(|m| m == n) || n.to_string_lossy().starts_with("..")
                }
                None => true,
            })
    }
}

/// The certificate and key files the conf names, and their directories.
#[derive(Default)]
struct CertFiles {
    files: HashSet<PathBuf>,
    dirs: HashSet<PathBuf>,
}

impl CertFiles {
    /// Whether an event touched a certificate: the file itself (written or renamed onto), or a
    /// Kubernetes volume's `..data` / `..<timestamp>` entries in its directory. Other files in
    /// those directories (a log written next to them, say) do not count, or every write would
    /// rebuild the snapshot.
    fn touched_by(&self, paths: &[PathBuf]) -> bool {
        paths.iter().any(|p| {
            self.files.contains(p)
                || (self.dirs.contains(&parent(p))
                    && p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with("..")))
        })
    }
}

/// Watches the directories of the certificates the running conf names (new ones after a
/// reload; directories no longer named stay watched, which costs nothing but a reload).
fn watch_cert_dirs(
    state: &State,
    watcher: &mut notify::RecommendedWatcher,
    certs: &mut CertFiles,
    conf_dir: &Path,
) {
    let snap = state.current();
    for c in &snap.conf.tls.certificates {
        for file in [c.cert.path(), c.key.path()] {
            certs.files.insert(file.to_path_buf());
            let dir = parent(file);
            if certs.dirs.contains(&dir) {
                continue;
            }
            // The conf's own directory is watched already.
            let watched = if dir == conf_dir {
                Ok(())
            } else {
                watcher.watch(&dir, RecursiveMode::NonRecursive)
            };
            match watched {
                Ok(()) => {
                    certs.dirs.insert(dir);
                }
                Err(e) => {
                    tracing::warn!(dir = %dir.display(), error = %e, "cannot watch a certificate directory")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_conf_and_volume_swaps_count_as_conf_changes() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("real.yaml");
        std::fs::write(&target, "x").unwrap();
        let link = dir.path().join("warden.yaml");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let conf = ConfFiles::new(&link);
        let at = |name: &str| vec![dir.path().join(name)];
        assert!(conf.touched_by(&at("warden.yaml")));
        assert!(conf.touched_by(&at("real.yaml")));
        assert!(conf.touched_by(&at("..data")));
        assert!(conf.touched_by(&at("..2026_11_27_16_00_00.123")));
        assert!(conf.touched_by(&[]), "a rescan must reload");
        assert!(!conf.touched_by(&at("access.log")));
        assert!(!conf.touched_by(&at(".warden.yaml.swp")));
        assert!(!conf.touched_by(&at("warden.yaml.bak")));
        assert!(conf.touched_by(&[
            dir.path().join("access.log"),
            dir.path().join("warden.yaml")
        ]));
    }
}
