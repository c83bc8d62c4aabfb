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

/// Reloads when the conf file changes. The parent directory is watched, not the file: editors
/// and Kubernetes ConfigMaps replace files (rename, symlink swap) rather than write them.
/// Events are debounced, and a reload of unchanged text does nothing.
pub fn watch_file(state: Arc<State>) -> notify::Result<()> {
    let path = state
        .conf_path
        .canonicalize()
        .unwrap_or_else(|_| state.conf_path.clone());
    let dir = path
        .parent()
        .map(|p| p.to_path_buf())
        .unwrap_or_else(|| ".".into());
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let mut watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
        if let Ok(ev) = ev {
            if !ev.kind.is_access() {
                let _ = tx.send(());
            }
        }
    })?;
    watcher.watch(&dir, RecursiveMode::NonRecursive)?;
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
