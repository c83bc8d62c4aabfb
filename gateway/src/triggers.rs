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
/// elsewhere. Events are debounced. A change in a certificate directory always reloads (the
/// conf text is the same, the files it names are not); otherwise a reload of unchanged text
/// does nothing.
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
    let mut certs = CertFiles::default();
    watch_cert_dirs(&state, &mut watcher, &mut certs, &written);
    crate::background::spawn(async move {
        while let Some(paths) = rx.recv().await {
            let mut certs_changed = certs.touched_by(&paths);
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
