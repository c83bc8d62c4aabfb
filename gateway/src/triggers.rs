//! What starts a reload besides the admin API: SIGHUP and changes to the conf file.

use crate::state::State;
use notify::{RecursiveMode, Watcher};
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

/// Reloads when the conf file changes. Directories are watched, not the file: editors and
/// Kubernetes ConfigMaps replace files (rename, symlink swap) rather than write them. The
/// directory named in the conf path is watched as written, because a ConfigMap's
/// `..data` link is swapped there and the directory the link pointed to is deleted (watching
/// the resolved path would see only the first update); the resolved directory is watched too
/// when it differs, for a conf that is a symlink to a file elsewhere. Events are debounced, and
/// a reload of unchanged text does nothing.
pub fn watch_file(state: Arc<State>) -> notify::Result<()> {
    let parent = |p: &std::path::Path| match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => ".".into(),
    };
    let written = parent(&state.conf_path);
    let resolved = state.conf_path.canonicalize().ok().map(|p| parent(&p));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let mut watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
        if let Ok(ev) = ev {
            if !ev.kind.is_access() {
                let _ = tx.send(());
            }
        }
    })?;
    watcher.watch(&written, RecursiveMode::NonRecursive)?;
    if let Some(dir) = resolved.filter(|d| d.canonicalize().ok() != written.canonicalize().ok()) {
        if let Err(e) = watcher.watch(&dir, RecursiveMode::NonRecursive) {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot watch the conf file's target directory");
        }
    }
    crate::background::spawn(async move {
        // The watcher must live as long as this loop.
        let _watcher = watcher;
        while rx.recv().await.is_some() {
            tokio::time::sleep(Duration::from_millis(250)).await;
            while rx.try_recv().is_ok() {}
            let _ = state.reload("file").await;
        }
    });
    Ok(())
}
