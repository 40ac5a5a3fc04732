//! The socket server: accept, attest, serve, shut down.
//!
//! Two sockets: `agent.sock` for agents and `control.sock` for the tray
//! and CLI (see [`control`]), plus one per box that `valetkey run` opened
//! (see [`boxes`]). Like mini-redis, [`run`] takes listeners that
//! are already bound, so the caller (and tests) know the sockets are ready
//! before a client connects. Each socket has a semaphore of its own that
//! caps its connections (`[limits] max_connections` for `agent.sock`,
//! `control_connections`, and `box_connections` for each box's socket; one
//! over gets `too_many_connections`), so a flood on one socket shuts out
//! only that socket's clients: the user can always reach `control.sock` to
//! pause, deny and revoke. A watch channel tells every connection to
//! finish its current request and close on shutdown. A one-second tick
//! times out unanswered consents.

mod boxes;
mod caps;
mod conn;
pub mod proxy;
pub use caps::{Cap, Full};
pub use conn::Role;
pub use wire::{Answer, Session};
mod control;
#[doc(hidden)]
pub mod dispatch;
mod guard;
pub mod listener;
mod wire;

use std::sync::Arc;
use std::time::Duration;

use interprocess::local_socket::tokio::{prelude::*, Listener};
use tokio::sync::watch;

use valetkey_core::broker::Shared;

/// Serves `listener` until `shutdown` resolves, then drains connections.
/// The two bound sockets.
pub struct Listeners {
    /// `agent.sock`.
    pub agent: Listener,
    /// `control.sock`.
    pub control: Listener,
    /// Where the boxes' sockets go (`boxes/` beside `agent.sock`).
    pub boxes: std::path::PathBuf,
}

/// Starts watching the policy directory and config.toml. Called before
/// the sockets are bound, so that once an agent can connect (and systemd
/// is told the daemon is ready) an edit is already seen. The rest of
/// what runs beside the sockets (duties that write the store) starts in
/// [`run`], once this daemon holds them.
pub fn watch_files(daemon: &Shared) {
    crate::policy_watch::spawn(daemon);
}

pub async fn run(
    daemon: Shared,
    listeners: Listeners,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let (stop_tx, stop_rx) = watch::channel(false);
    crate::lockwatch::spawn_watchers(&daemon);
    crate::duties::spawn(&daemon);
    crate::notify::spawn(&daemon);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let limits = &daemon.config.limits;
    let agents = Cap::new(limits.max_connections, "max_connections");
    let controls = Cap::new(limits.control_connections, "control_connections");
    let mut tasks = tokio::task::JoinSet::new();
    let mut next_id: u64 = 0;
    let (box_tx, mut box_rx) = tokio::sync::mpsc::channel(64);
    boxes::restore(&daemon, &listeners.boxes, &box_tx);
    let door = Arc::new(boxes::Door {
        root: listeners.boxes.clone(),
        to: box_tx,
        proxy: Arc::new(proxy::Proxy::start().unwrap_or_else(|e| {
            tracing::warn!(error = %e, "no thread for the egress proxies; they share the daemon's runtime");
            proxy::Proxy::on(tokio::runtime::Handle::current())
        })),
    });
    tokio::pin!(shutdown);
    loop {
        let (stream, role, permit) = loop {
            tokio::select! {
                s = listeners.agent.accept() => break (s, Role::Agent, agents.take()),
                s = listeners.control.accept() => break (s, Role::Control, controls.take()),
                Some((s, session, permit)) = box_rx.recv() => break (Ok(s), Role::Boxed(session), permit),
                _ = tick.tick() => valetkey_core::consent::flow::expire_overdue(&daemon),
                _ = &mut shutdown => return finish(&daemon, tasks, stop_tx).await,
            }
        };
        match stream {
            Ok(stream) => {
                let permit = match permit {
                    Ok(p) => p,
                    Err(full) => {
                        tokio::spawn(conn::turn_away(stream, full));
                        continue;
                    }
                };
                next_id += 1;
                let (d, rx, door) = (daemon.clone(), stop_rx.clone(), door.clone());
                let id = next_id;
                tasks.spawn(async move {
                    conn::serve(d, stream, role, id, rx, door).await;
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
}

async fn finish(
    daemon: &Shared,
    mut tasks: tokio::task::JoinSet<()>,
    stop_tx: watch::Sender<bool>,
) {
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
    // Counted repeats first, so a clean stop leaves nothing unwritten,
    // then sign the head so it leaves nothing unsigned.
    valetkey_core::record::flush_reuse(daemon, true);
    crate::duties::sign(daemon).await;
}
