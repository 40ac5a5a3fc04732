//! One connection: identity from the socket, then a frame loop.
//!
//! The peer's uid and pid come from `SO_PEERCRED` before a byte is read. A
//! peer of another uid, or one that cannot be attested, gets one error
//! frame (`peer_rejected`, id `null`) and is disconnected. An oversized
//! frame gets `frame_too_large` and a close; malformed JSON only gets an
//! error, and the connection continues.

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use interprocess::local_socket::tokio::{prelude::*, Stream};
use tokio::sync::watch;
use tokio_util::codec::Framed;
use tracing::Instrument;
use valetkey_ipc::codec::{FrameCodec, FrameError};
use valetkey_ipc::jsonrpc::Response;
use valetkey_ipc::methods::PeerIdentity;
use valetkey_ipc::{ErrorCode, RpcError};

use super::dispatch;
use crate::state::Daemon;

/// Which socket a connection came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `agent.sock`.
    Agent,
    /// `control.sock`: only allow-listed executables.
    Control,
}

/// Per-connection session state.
pub struct Session {
    /// Connection number, for logs.
    pub conn_id: u64,
    /// What attestation found.
    pub identity: PeerIdentity,
    /// Set by `hello`: registry id and self-description.
    pub agent: Option<(i64, valetkey_ipc::methods::AgentInfo)>,
    /// Set by `hello` with a delegation token: the verified chain.
    pub delegation: Option<valetkey_ipc::methods::DelegationInfo>,
}

pub(super) type Conn = Framed<Stream, FrameCodec>;

pub(super) async fn send(framed: &mut Conn, resp: &Response) -> bool {
    match serde_json::to_vec(resp) {
        Ok(v) => framed.send(Bytes::from(v)).await.is_ok(),
        Err(_) => false,
    }
}

async fn reject(mut framed: Conn, err: RpcError) {
    tracing::warn!(error = %err, "peer rejected");
    let _ = send(&mut framed, &Response::err(None, err)).await;
}

/// Serves one connection until it closes or the daemon stops.
pub async fn serve(
    daemon: Daemon,
    stream: Stream,
    role: Role,
    conn_id: u64,
    mut stop: watch::Receiver<bool>,
) {
    let creds = stream.peer_creds();
    let framed = Framed::new(stream, FrameCodec::default());
    let (uid, pid) = match &creds {
        Ok(c) => (c.euid(), c.pid()),
        Err(_) => (None, None),
    };
    let span = tracing::info_span!(
        "conn",
        id = conn_id,
        ?role,
        uid,
        pid,
        agent = tracing::field::Empty
    );
    async move {
        let me = rustix::process::geteuid().as_raw();
        let (Some(uid), Some(pid)) = (uid, pid) else {
            return reject(framed, RpcError::new(ErrorCode::PeerRejected, "cannot read the peer's credentials from the socket")).await;
        };
        if uid != me {
            return reject(framed, RpcError::new(ErrorCode::PeerRejected, format!(
                "this valetkeyd serves uid {me}; connections from uid {uid} are refused. Run your own daemon as your own user"
            ))).await;
        }
        let d = daemon.clone();
        let attested = tokio::task::spawn_blocking(move || d.attestor.attest(pid as u32, uid)).await;
        let identity = match attested {
            Ok(Ok(id)) => id,
            Ok(Err(e)) => return reject(framed, RpcError::new(ErrorCode::PeerRejected, format!("{e}"))).await,
            Err(e) => return reject(framed, RpcError::new(ErrorCode::Internal, format!("attestation task failed: {e}"))).await,
        };
        tracing::debug!(exe = %identity.exe, sha256 = %identity.sha256, "peer attested");
        if role == Role::Control {
            if let Err(why) = super::control::admit(&daemon, &identity) {
                return reject(framed, RpcError::new(ErrorCode::PeerRejected, why)).await;
            }
            return super::control::serve(&daemon, framed, &identity, &mut stop).await;
        }
        let mut session = Session { conn_id, identity, agent: None, delegation: None };
        frame_loop(&daemon, framed, &mut session, &mut stop).await;
        if let Some((agent_id, _)) = &session.agent {
            daemon.conns.unregister(*agent_id, conn_id);
        }
        tracing::debug!("connection closed");
    }
    .instrument(span)
    .await
}

async fn frame_loop(
    daemon: &Daemon,
    mut framed: Conn,
    session: &mut Session,
    stop: &mut watch::Receiver<bool>,
) {
    // Turns true when the user revokes this agent: close at once, even
    // while a request (say, a consent wait) is in flight.
    let mut kill: Option<watch::Receiver<bool>> = None;
    let killed = |k: &mut Option<watch::Receiver<bool>>| {
        let k = k.clone();
        async move {
            match k {
                Some(mut k) => {
                    let _ = k.wait_for(|v| *v).await;
                }
                None => std::future::pending::<()>().await,
            }
        }
    };
    loop {
        let frame = tokio::select! {
            f = framed.next() => f,
            _ = stop.changed() => return,
            _ = killed(&mut kill) => return closed_by_user(&mut framed).await,
        };
        let resp = match frame {
            Some(Ok(bytes)) => {
                let resp = tokio::select! {
                    r = dispatch::dispatch(daemon, session, &bytes) => r,
                    _ = stop.changed() => return,
                    _ = killed(&mut kill) => return closed_by_user(&mut framed).await,
                };
                if kill.is_none() {
                    if let Some((agent_id, _)) = &session.agent {
                        kill = Some(daemon.conns.register(*agent_id, session.conn_id));
                    }
                }
                resp
            }
            Some(Err(FrameError::TooLarge { limit })) => {
                let err = RpcError::new(
                    ErrorCode::FrameTooLarge,
                    format!("a frame exceeded {limit} bytes; the connection is closed. Keep each JSON-RPC message under {limit} bytes including its newline"),
                );
                tracing::warn!("oversized frame; closing");
                let _ = send(&mut framed, &Response::err(None, err)).await;
                return;
            }
            Some(Err(_)) | None => return,
        };
        if !send(&mut framed, &resp).await {
            return;
        }
    }
}

async fn closed_by_user(framed: &mut Conn) {
    tracing::info!("closing: the user revoked this agent");
    let err = RpcError::new(
        ErrorCode::AgentSuspended,
        "the user revoked this agent's access; the connection is closed",
    );
    let _ = send(framed, &Response::err(None, err)).await;
}
