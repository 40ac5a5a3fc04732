//! The agent socket server: accept, attest, serve, shut down.
//!
//! Like mini-redis, [`run`] takes a listener that is already bound, so the
//! caller (and tests) know the socket is ready before a client connects. A
//! semaphore caps concurrent connections; a watch channel tells every
//! connection to finish its current request and close on shutdown.

mod conn;
pub use conn::Session;
mod dispatch;
pub mod listener;

use std::sync::Arc;
use std::time::Duration;

use interprocess::local_socket::tokio::{prelude::*, Listener};
use tokio::sync::{watch, Semaphore};

use crate::state::Daemon;

/// Most agent connections served at once; more wait in the kernel backlog.
pub const MAX_CONNECTIONS: usize = 4096;

/// Serves `listener` until `shutdown` resolves, then drains connections.
pub async fn run(
    daemon: Daemon,
    listener: Listener,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let (stop_tx, stop_rx) = watch::channel(false);
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut tasks = tokio::task::JoinSet::new();
    let mut next_id: u64 = 0;
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            _ = &mut shutdown => break,
        };
        let stream = tokio::select! {
            s = listener.accept() => s,
            _ = &mut shutdown => break,
        };
        match stream {
            Ok(stream) => {
                next_id += 1;
                let (d, rx) = (daemon.clone(), stop_rx.clone());
                let id = next_id;
                tasks.spawn(async move {
                    conn::serve(d, stream, id, rx).await;
                    drop(permit);
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        while tasks.try_join_next().is_some() {}
    }
    tracing::info!(
        connections = tasks.len(),
        "shutting down: closing connections"
    );
    let _ = stop_tx.send(true);
    let drain = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(Duration::from_secs(5), drain)
        .await
        .is_err()
    {
        tracing::warn!("connections did not close within 5 s; aborting them");
    }
}
