//! One connection: identity from the socket, then a frame loop.
//!
//! The peer's uid and pid come from `SO_PEERCRED` before a byte is read. A
//! peer of another uid, or one that cannot be attested, gets one error
//! frame (`peer_rejected`, id `null`) and is disconnected.
//!
//! Then every frame is checked before it reaches a handler, and each
//! violation gets its error and, where the stream cannot be trusted any
//! more, a close, without touching other connections (each has its own
//! task, buffer and limits):
//! - over 64 KiB: `frame_too_large`, close;
//! - not UTF-8, not JSON, nested too deep, not JSON-RPC: `parse_error` /
//!   `bad_request`, close;
//! - the pid that connected has exited or names another process now
//!   (the socket was handed to, or inherited by, someone else):
//!   `peer_changed`, close;
//! - a slow frame, a flood, and a third unknown method: [`super::guard`],
//!   which the control socket's loop uses too.

use futures::StreamExt;
use interprocess::local_socket::tokio::{prelude::*, Stream};
use tokio::sync::watch;
use tracing::Instrument;
use valetkey_core::caller::Caller;
use valetkey_core::live::Cut;
use valetkey_ipc::codec::FrameError;
use valetkey_ipc::jsonrpc::Response;
use valetkey_ipc::{ErrorCode, RpcError};

use super::dispatch;
use super::guard::Guard;
use super::wire::{send, send_answer, Answer, Conn, Session};
use valetkey_core::broker::Shared;

/// Which socket a connection came in on.
#[derive(Debug, Clone)]
pub enum Role {
    /// `agent.sock`.
    Agent,
    /// `control.sock`: only allow-listed executables.
    Control,
    /// A box's own socket: only processes inside that box.
    Boxed(std::sync::Arc<valetkey_core::boxes::BoxSession>),
}

async fn reject(mut framed: Conn, err: RpcError) {
    tracing::warn!(error = %err, "peer rejected");
    let _ = send(&mut framed, &Response::err(None, err)).await;
}

/// Refuses a connection over its socket's cap: one error frame, then close.
pub async fn turn_away(stream: Stream, full: super::caps::Full) {
    let super::caps::Full { cap, key } = full;
    tracing::warn!(cap, key, "connection refused: too many open on this socket");
    let mut framed = super::wire::framed(stream);
    let err = RpcError::new(
        ErrorCode::TooManyConnections,
        format!("this socket already has {cap} connections open ([limits] {key}); close idle ones and retry"),
    )
    .with("limit", key);
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(1),
        send(&mut framed, &Response::err(None, err)),
    )
    .await;
}

/// Serves one connection until it closes or the daemon stops.
pub async fn serve(
    daemon: Shared,
    stream: Stream,
    role: Role,
    conn_id: u64,
    mut stop: watch::Receiver<bool>,
    door: std::sync::Arc<super::boxes::Door>,
) {
    let creds = stream.peer_creds();
    let framed = super::wire::framed(stream);
    let (uid, pid) = match &creds {
        Ok(c) => (c.euid(), c.pid()),
        Err(_) => (None, None),
    };
    let span = tracing::info_span!(
        "conn",
        id = conn_id,
        role = role_name(&role),
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
        let (d, r) = (daemon.clone(), role.clone());
        let attested = tokio::task::spawn_blocking(move || attest(&d, &r, pid as u32, uid)).await;
        let identity = match attested {
            Ok(Ok(id)) => id,
            Ok(Err(e)) => return reject(framed, RpcError::new(ErrorCode::PeerRejected, e)).await,
            Err(e) => return reject(framed, RpcError::new(ErrorCode::Internal, format!("attestation task failed: {e}"))).await,
        };
        tracing::debug!(exe = %identity.exe, sha256 = %identity.sha256, "peer attested");
        if matches!(role, Role::Control) {
            if let Err(why) = super::control::admit(&daemon, &identity) {
                return reject(framed, RpcError::new(ErrorCode::PeerRejected, why)).await;
            }
            // Boxed: the control handlers are many and large, and a
            // connection future is as big as its biggest branch.
            return Box::pin(super::control::serve(&daemon, framed, &identity, &mut stop, &door)).await;
        }
        let process = valetkey_core::attest::Attestor::handle(identity.pid, identity.start_time);
        let mut session = Session {
            conn_id,
            caller: Caller::new(conn_id, identity),
            egress: Some(door.proxy.clone()),
            opened: None,
        };
        frame_loop(&daemon, framed, &mut session, &process, &mut stop).await;
        if let Some((agent_id, _)) = &session.caller.agent {
            daemon.live.unregister(*agent_id, conn_id);
        }
        valetkey_core::record::session_closed(&daemon, conn_id);
        crate::memory::connection_closed();
        tracing::debug!("connection closed");
    }
    .instrument(span)
    .await
}

fn role_name(role: &Role) -> &'static str {
    match role {
        Role::Agent => "agent",
        Role::Control => "control",
        Role::Boxed(_) => "box",
    }
}

/// Attests the peer; on a box's socket, also checks it is inside that box
/// and gives it the box's facts (its other namespaces are the box's, as
/// expected, so they are not reported as foreign). Every connection from
/// a box is made by its supervisor (`valetkey box-exec`, which makes the
/// box's `connect()` calls itself): its executable and hash are those of
/// the program the box runs, as the daemon hashed it at `box.open`.
/// Blocking.
fn attest(
    d: &valetkey_core::broker::Broker,
    role: &Role,
    pid: u32,
    uid: u32,
) -> Result<valetkey_ipc::methods::PeerIdentity, String> {
    let mut identity = d.attestor.attest(pid, uid).map_err(|e| e.to_string())?;
    if let Role::Boxed(session) = role {
        session.admits(pid)?;
        identity.foreign_namespaces.clear();
        identity.exe = session.facts.program.path.clone();
        identity.sha256 = session.facts.program.sha256.clone();
        identity.exe_unverified = false;
        identity.confinement = Some(session.facts.clone());
    }
    Ok(identity)
}

async fn frame_loop(
    daemon: &Shared,
    mut framed: Conn,
    session: &mut Session,
    process: &valetkey_core::attest::ProcessHandle,
    stop: &mut watch::Receiver<bool>,
) {
    // Turns true when the user revokes this agent: close at once, even
    // while a request (say, a consent wait) is in flight.
    let mut kill: Option<watch::Receiver<Option<Cut>>> = None;
    let killed = |k: &mut Option<watch::Receiver<Option<Cut>>>| cut(k.clone());
    // A frame that arrived while the previous request was in flight.
    let mut early: Option<Frame> = None;
    let mut guard = Guard::new(&daemon.config.limits);
    loop {
        let frame = match early.take() {
            Some(f) => f,
            None => tokio::select! {
            f = framed.next() => f,
            _ = tokio::time::sleep(guard.check_every()) => {
                match guard.idle(!framed.read_buffer().is_empty()) {
                    None => continue,
                    Some(err) => {
                        let _ = send(&mut framed, &err).await;
                        return;
                    }
                }
            }
            _ = stop.changed() => return,
            why = killed(&mut kill) => return closed_by_user(&mut framed, why).await,
            },
        };
        let resp = match frame {
            Some(Ok(bytes)) => {
                if let Some(refused) = guard.arrived(&bytes) {
                    if !send(&mut framed, &refused).await {
                        return;
                    }
                    continue;
                }
                let resp = if process.alive() {
                    let work = dispatch::dispatch(daemon, session, &bytes);
                    match in_flight(work, &mut framed, stop, &kill, &mut early).await {
                        Flight::Answered(r) => r,
                        Flight::Stopped => return,
                        Flight::Cut(why) => return closed_by_user(&mut framed, why).await,
                        Flight::PeerGone => {
                            tracing::debug!(
                                "the peer closed with its request in flight; dropping it"
                            );
                            return;
                        }
                    }
                } else {
                    tracing::warn!(
                        pid = session.caller.identity.pid,
                        "the peer process is gone or its pid was reused; closing"
                    );
                    Answer::err(super::guard::id_of(&bytes), RpcError::new(
                        ErrorCode::PeerChanged,
                        format!("process {} that opened this connection has exited (or its pid now names another process); the connection is closed. Connect again from the process that uses it", session.caller.identity.pid),
                    ))
                };
                if kill.is_none() {
                    if let Some((agent_id, _)) = &session.caller.agent {
                        kill = Some(daemon.live.register(*agent_id, session.conn_id));
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
        if !send_answer(&mut framed, &resp).await {
            return;
        }
        if guard.closes_after(resp.error()) {
            tracing::info!("closing after a protocol violation");
            return;
        }
    }
}

/// One frame as the codec reads it (`None`: the peer closed).
type Frame = Option<Result<bytes::BytesMut, FrameError>>;

/// How a request in flight ended.
enum Flight {
    /// Its answer.
    Answered(Answer),
    /// The daemon is stopping.
    Stopped,
    /// The user cut this agent off.
    Cut(Cut),
    /// The peer closed its end: nobody is left to answer, so the request
    /// is dropped, and with it any wait (a consent card nobody else waits
    /// for is taken down: `Consents::abandoned`).
    PeerGone,
}

/// Runs one request while watching the connection: the daemon stopping,
/// the user cutting the agent off, and the peer closing. A frame that
/// arrives meanwhile (a pipelined request) is kept in `early` for the
/// loop, and the connection is not read again until the request ends.
async fn in_flight(
    work: impl std::future::Future<Output = Answer>,
    framed: &mut Conn,
    stop: &mut watch::Receiver<bool>,
    kill: &Option<watch::Receiver<Option<Cut>>>,
    early: &mut Option<Frame>,
) -> Flight {
    tokio::pin!(work);
    loop {
        tokio::select! {
            r = &mut work => return Flight::Answered(r),
            _ = stop.changed() => return Flight::Stopped,
            why = cut(kill.clone()) => return Flight::Cut(why),
            f = framed.next(), if early.is_none() => match f {
                None | Some(Err(FrameError::Truncated | FrameError::Io(_))) => {
                    return Flight::PeerGone
                }
                f => *early = Some(f),
            },
        }
    }
}

/// Resolves when the user cuts this agent off (never without a watch).
async fn cut(k: Option<watch::Receiver<Option<Cut>>>) -> Cut {
    match k {
        Some(mut k) => {
            let got = k.wait_for(|v| v.is_some()).await.map(|v| *v);
            match got {
                Ok(why) => why.unwrap_or(Cut::Suspended),
                Err(_) => std::future::pending().await,
            }
        }
        None => std::future::pending().await,
    }
}

async fn closed_by_user(framed: &mut Conn, why: Cut) {
    tracing::info!(?why, "closing: the user cut this agent off");
    let (code, message) = why.error();
    let err = RpcError::new(code, message);
    let _ = send(framed, &Response::err(None, err)).await;
}
