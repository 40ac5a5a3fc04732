//! The boxes' own sockets: one listener per open box, in a directory of its
//! own under `RUNTIME/boxes/`, which the launcher mounts read-only at the
//! box's runtime directory.
//!
//! Each listener runs in a task that hands accepted connections to the
//! main accept loop (so the connection cap and shutdown cover them too),
//! and ends when the box is closed or its launcher is gone. At start-up
//! the boxes an earlier daemon left open are bound again at the same path,
//! so an agent in a running box reconnects to the new daemon.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use interprocess::local_socket::tokio::{prelude::*, Stream};
use tokio::sync::mpsc;

use valetkey_core::boxes::BoxSession;
use valetkey_core::broker::Shared;
use valetkey_core::error::BrokerError;
use valetkey_ipc::control::{BoxClose, BoxOpen, BoxStarted};
use valetkey_ipc::methods::{Method, PeerIdentity};
use valetkey_ipc::ErrorCode;

/// A connection accepted on a box's socket, with its slot under the
/// box's own cap (or the cap it met).
pub type Accepted = (
    Stream,
    Arc<BoxSession>,
    Result<tokio::sync::OwnedSemaphorePermit, super::caps::Full>,
);

/// What the control socket needs to open boxes: where their directories
/// go, and where their connections are handed.
#[derive(Clone)]
pub struct Door {
    /// `RUNTIME/boxes`.
    pub root: std::path::PathBuf,
    /// The main accept loop.
    pub to: mpsc::Sender<Accepted>,
    /// The egress proxy of boxes in `proxy` mode.
    pub proxy: Arc<super::proxy::Proxy>,
}

/// How often a box's listener checks that its launcher still runs.
const LAUNCHER_CHECK: Duration = Duration::from_secs(2);

/// Binds `session`'s socket and serves it until the box closes.
pub fn serve(
    d: &Shared,
    session: Arc<BoxSession>,
    to: mpsc::Sender<Accepted>,
) -> Result<(), String> {
    // A socket left by an earlier daemon is removed by `bind`, which
    // refuses one that still answers (a relay) or a symlink.
    let path = session.socket();
    let listener = super::listener::bind(&path).map_err(|e| e.to_string())?;
    let d = d.clone();
    let cap = super::caps::Cap::new(d.config.limits.box_connections, "box_connections");
    tokio::spawn(async move {
        let mut closed = session.closed();
        let mut check = tokio::time::interval(LAUNCHER_CHECK);
        loop {
            tokio::select! {
                s = listener.accept() => match s {
                    Ok(stream) => {
                        if to.send((stream, session.clone(), cap.take())).await.is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, id = %session.facts.id, "box accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                _ = closed.changed() => return,
                _ = check.tick() => {
                    if !session.launcher_alive() {
                        tracing::info!(id = %session.facts.id, "box launcher gone; closing the box");
                        valetkey_core::boxes::closed(&d, &session.facts.id, "launcher gone");
                        return;
                    }
                }
            }
        }
    });
    Ok(())
}

/// Re-binds the boxes recorded under `root` whose launcher still runs.
pub fn restore(d: &Shared, root: &Path, to: &mpsc::Sender<Accepted>) {
    for session in d.boxes.restore(root) {
        let id = session.facts.id.clone();
        match serve(d, session, to.clone()) {
            Ok(()) => tracing::info!(%id, "box socket restored"),
            Err(e) => {
                tracing::warn!(%id, error = %e, "cannot restore a box's socket; closing it");
                valetkey_core::boxes::closed(d, &id, "socket lost at restart");
            }
        }
    }
}

type Params<M> = <M as Method>::Params;
type Answer<M> = Result<<M as Method>::Result, BrokerError>;

/// `box.open` from the launcher `peer`: the plan, and the box's socket
/// (and proxy) served before the launcher hears of it.
pub async fn open(
    d: &Shared,
    p: Params<BoxOpen>,
    peer: &PeerIdentity,
    door: &Door,
) -> Answer<BoxOpen> {
    let (d2, peer2, root) = (d.clone(), peer.clone(), door.root.clone());
    let (plan, session) =
        blocking(move || valetkey_core::boxes::open(&d2, p, &peer2, &root)).await?;
    if let Some(session) = session {
        let id = session.facts.id.clone();
        let served =
            serve(d, session.clone(), door.to.clone()).and_then(|()| match session.proxy {
                Some(_) => super::proxy::boxed::serve(d, &door.proxy, session),
                None => Ok(()),
            });
        if let Err(e) = served {
            valetkey_core::boxes::closed(d, &id, "socket not bound");
            return Err(BrokerError::rpc(
                ErrorCode::Internal,
                format!("cannot open the box's socket: {e}"),
            ));
        }
        tracing::info!(%id, profile = %plan.facts.profile, "box opened");
    }
    Ok(plan)
}

/// `box.started`: the launcher names the box's first process.
pub async fn started(d: &Shared, p: Params<BoxStarted>, peer: &PeerIdentity) -> Answer<BoxStarted> {
    let (d2, peer2) = (d.clone(), peer.clone());
    blocking(move || valetkey_core::boxes::started(&d2, p, &peer2)).await
}

/// `box.close`: the launcher's box has ended.
pub fn close(d: &Shared, p: Params<BoxClose>, peer: &PeerIdentity) -> Answer<BoxClose> {
    valetkey_core::boxes::close(d, &p.id, p.quarantined, peer)
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, BrokerError> + Send + 'static,
) -> Result<T, BrokerError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| BrokerError::rpc(ErrorCode::Internal, format!("box task failed: {e}")))?
}
