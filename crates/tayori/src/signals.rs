//! Stop signals: Ctrl-C and SIGTERM (what Kubernetes sends).

/// Returns when the process is asked to stop.
pub async fn wait_for_stop() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut term) = signal(SignalKind::terminate()) else {
            let _ = ctrl_c.await;
            return;
        };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// Calls `reload` on every SIGHUP (the conventional "reload your configuration" signal) until
/// the returned task is aborted. `None` where there are no such signals, or when the handler
/// cannot be installed (then SIGHUP keeps its default action).
pub fn on_hangup(reload: impl Fn() + Send + 'static) -> Option<tokio::task::JoinHandle<()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hangups = match signal(SignalKind::hangup()) {
            Ok(hangups) => hangups,
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGHUP; template reloads need a restart");
                return None;
            }
        };
        Some(tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                reload();
            }
        }))
    }
    #[cfg(not(unix))]
    {
        let _ = reload;
        None
    }
}
