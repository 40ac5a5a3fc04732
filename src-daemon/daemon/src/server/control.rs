//! The control socket: the tray app and the `valetkey` CLI decide consents,
//! list and revoke grants, and pause issuing here.
//!
//! Admission: the same uid (checked for every connection) *and* an
//! attested executable that is `valetkey`, `valetkey-tray` or
//! `valetkey-window` installed next to this `valetkeyd`, or one listed in `[control] allowed_clients`, whose
//! path can be taken at its word: the peer runs in valetkeyd's own mount
//! and user namespaces, the path names the very file it runs (device and
//! inode), and no `LD_PRELOAD`, `LD_LIBRARY_PATH` or `LD_AUDIT` is set in
//! its environment (see [`valetkey_core::attest::loader_env`]). What
//! that buys: an agent cannot approve its own requests by speaking this
//! protocol, because its binary is not on the list. What it does not buy:
//! code running as the same user can still ptrace the tray (unless
//! `kernel.yama.ptrace_scope` >= 1), drive its window with synthetic input,
//! or edit the state database; the uid is the security boundary, attestation
//! raises the bar inside it.
//!
//! After `events.subscribe`, [`valetkey_ipc::control::Event`]s are pushed on
//! the connection as JSON-RPC notifications between responses.

use std::path::{Path, PathBuf};

use futures::StreamExt;
use serde_json::Value;
use tokio::sync::{broadcast, watch};
use valetkey_ipc::codec::FrameError;
use valetkey_ipc::control::{EventsSubscribeResult, EVENT_METHOD};
use valetkey_ipc::jsonrpc::{parse_request_ref, Response};
use valetkey_ipc::methods::PeerIdentity;
use valetkey_ipc::requests::{ControlMethod, ControlRequest};
use valetkey_ipc::{ErrorCode, RpcError};

use super::guard::Guard;
use super::wire::{result, send, Conn};
use valetkey_core::agents as a;
use valetkey_core::broker::Shared;
use valetkey_core::control as h;
use valetkey_core::error::BrokerError;

/// The names of the control clients installed next to `valetkeyd`.
pub const CONTROL_CLIENTS: &[&str] = &["valetkey", "valetkey-tray", "valetkey-window"];

fn allowed_paths(d: &Shared) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = d.config.control.allowed_clients.clone();
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_owned))
    {
        v.extend(CONTROL_CLIENTS.iter().map(|n| dir.join(n)));
    }
    v
}

/// Whether this peer may use the control socket; the error says why not.
/// Its path must be trustworthy (our namespaces, the very file it runs, no
/// loader variables) before the allow-list is asked.
pub fn admit(d: &Shared, peer: &PeerIdentity) -> Result<(), String> {
    trustworthy(peer, valetkey_core::attest::loader_env(peer.pid))?;
    // The environment was read from this process, not a successor.
    if !valetkey_core::attest::Attestor::still_same(peer.pid, peer.start_time) {
        return Err(format!(
            "process {} exited while being admitted; connect again",
            peer.pid
        ));
    }
    let exe = Path::new(&peer.exe);
    let ok = allowed_paths(d)
        .iter()
        .any(|p| p == exe || std::fs::canonicalize(p).map(|c| c == exe).unwrap_or(false));
    if ok {
        return Ok(());
    }
    Err(format!(
        "{} may not use the control socket: only valetkey, valetkey-tray and valetkey-window installed next to valetkeyd, or a client listed in [control] allowed_clients, may decide consents",
        peer.exe
    ))
}

/// Refuses a peer whose executable path cannot be taken at its word: the
/// namespaces and the path were checked at attestation, the loader
/// variables are read now.
fn trustworthy(peer: &PeerIdentity, loader_env: Result<Vec<String>, String>) -> Result<(), String> {
    if !peer.foreign_namespaces.is_empty() {
        return Err(format!(
            "{} runs in another {} namespace than valetkeyd (a container, `unshare` or a sandbox), where its path names a different file; the control socket takes clients from valetkeyd's own namespaces only. Run valetkey outside it",
            peer.exe,
            peer.foreign_namespaces.join(" and ")
        ));
    }
    if peer.exe_unverified {
        return Err(format!(
            "the path {} does not name the file process {} runs (it was replaced or mounted over); run the installed valetkey",
            peer.exe, peer.pid
        ));
    }
    match loader_env {
        Ok(vars) if vars.is_empty() => Ok(()),
        Ok(vars) => Err(format!(
            "{} runs with {} set, which loads code of its own choosing into it; the control socket refuses such clients. Unset {} and retry",
            peer.exe,
            vars.join(" and "),
            vars.join(", ")
        )),
        Err(e) => Err(format!(
            "cannot read the environment of process {} ({e}), so cannot rule out LD_PRELOAD; run valetkey as valetkeyd's user, outside any sandbox",
            peer.pid
        )),
    }
}

/// Serves one admitted control connection, its frames checked as the
/// agent socket's are ([`super::guard`]): the control socket is the
/// user's, but any process of the user's may connect and try.
pub async fn serve(
    d: &Shared,
    mut framed: Conn,
    peer: &PeerIdentity,
    stop: &mut watch::Receiver<bool>,
    door: &super::boxes::Door,
) {
    tracing::info!(exe = %peer.exe, "control client connected");
    let process = valetkey_core::attest::Attestor::handle(peer.pid, peer.start_time);
    let mut guard = Guard::new(&d.config.limits);
    let mut events: Option<broadcast::Receiver<valetkey_ipc::control::Event>> = None;
    loop {
        let next_event = async {
            match events.as_mut() {
                Some(rx) => rx.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            frame = framed.next() => {
                let resp = match frame {
                    Some(Ok(bytes)) => match guard.arrived(&bytes) {
                        Some(refused) => refused,
                        None if !process.alive() => peer_changed(peer, &bytes),
                        None => dispatch(d, &bytes, &mut events, (peer, door)).await,
                    },
                    Some(Err(FrameError::TooLarge { limit })) => {
                        let err = RpcError::new(ErrorCode::FrameTooLarge, format!("a frame exceeded {limit} bytes; the connection is closed"));
                        let _ = send(&mut framed, &Response::err(None, err)).await;
                        return;
                    }
                    Some(Err(_)) | None => return,
                };
                if !send(&mut framed, &resp).await || guard.closes_after(resp.error.as_ref()) {
                    return;
                }
            }
            _ = tokio::time::sleep(guard.check_every()) => {
                if let Some(err) = guard.idle(!framed.read_buffer().is_empty()) {
                    let _ = send(&mut framed, &err).await;
                    return;
                }
            }
            ev = next_event => {
                if !push(&mut framed, ev).await {
                    return;
                }
            }
            _ = stop.changed() => return,
        }
    }
}

/// Pushes one event; false when the connection ends.
async fn push(
    framed: &mut Conn,
    ev: Result<valetkey_ipc::control::Event, broadcast::error::RecvError>,
) -> bool {
    let params = match ev {
        Ok(e) => serde_json::to_value(e).unwrap_or(Value::Null),
        // The client fell behind: tell it to re-list.
        Err(broadcast::error::RecvError::Lagged(n)) => {
            serde_json::json!({"type": "lagged", "missed": n})
        }
        Err(broadcast::error::RecvError::Closed) => return false,
    };
    let note = serde_json::json!({"jsonrpc": "2.0", "method": EVENT_METHOD, "params": params});
    super::wire::write_frame(framed, note.to_string().into_bytes()).await
}

/// The answer to a request from a peer whose process is gone (or whose
/// pid names another process now): the connection was handed on.
fn peer_changed(peer: &PeerIdentity, frame: &[u8]) -> Response {
    tracing::warn!(
        pid = peer.pid,
        "the control peer is gone or its pid was reused; closing"
    );
    Response::err(
        super::guard::id_of(frame),
        RpcError::new(
            ErrorCode::PeerChanged,
            format!("process {} that opened this connection has exited (or its pid now names another process); the connection is closed. Connect again from the process that uses it", peer.pid),
        ),
    )
}

fn unknown(method: &str) -> BrokerError {
    BrokerError::Rpc(
        RpcError::new(
            ErrorCode::UnknownMethod,
            format!(
                "unknown control method {method:?}; methods: {}; see PROTOCOL.md, \"Control socket\"",
                ControlMethod::listed()
            ),
        )
        .with("method", method),
    )
}

async fn dispatch(
    d: &Shared,
    frame: &[u8],
    events: &mut Option<broadcast::Receiver<valetkey_ipc::control::Event>>,
    (peer, door): (&PeerIdentity, &super::boxes::Door),
) -> Response {
    let req = match parse_request_ref(frame) {
        Ok(r) => r,
        Err(resp) => return *resp,
    };
    let (id, method) = (req.id.clone(), req.method.as_ref());
    let outcome = match ControlMethod::from_wire(method) {
        None => Err(unknown(method)),
        Some(m) => match m.parse(req.params) {
            Ok(request) => answer(d, request, events, (peer, door)).await,
            Err(e) => Err(BrokerError::Rpc(e)),
        },
    };
    match outcome {
        Ok(v) => Response::ok(id, v),
        Err(e) => {
            let err: RpcError = e.into();
            tracing::info!(code = err.name(), method = %method, "control request refused");
            Response::err(id, err)
        }
    }
}

/// One exhaustive match: a method added to [`ControlMethod`]'s list and
/// not handled here does not compile.
async fn answer(
    d: &Shared,
    request: ControlRequest,
    events: &mut Option<broadcast::Receiver<valetkey_ipc::control::Event>>,
    (peer, door): (&PeerIdentity, &super::boxes::Door),
) -> Result<Value, BrokerError> {
    use valetkey_core::{grants, logins, mcp::admin};
    use ControlRequest as R;
    match request {
        R::ConsentList(_) => result(h::consent_list(d)),
        R::ConsentDecide(p) => result(h::consent_decide(d, p)),
        R::AgentsList(_) => result(a::agents_list(d)),
        R::AgentsReinstate(p) => result(a::agents_reinstate(d, p)),
        R::AgentsShow(p) => result(a::agents_show(d, p)),
        R::AgentsStats(_) => result(Ok(d.monitor.stats(d.clock.now()))),
        R::AgentsEdit(p) => result(a::agents_edit(d, p)),
        R::AgentsLifecycle(p) => result(a::agents_lifecycle(d, p).await),
        R::KeysRotate(_) => result(h::keys_rotate(d).await),
        R::PolicyStatus(_) => result(Ok(d.policies.status())),
        R::Revoke(p) => result(h::revoke(d, p).await),
        R::IssuingSet(p) => result(h::issuing_set(d, p)),
        R::Status(_) => result(Ok(d.status())),
        R::ActivityList(p) => result(h::activity_list(d, p)),
        R::EventsSubscribe(_) => {
            *events = Some(d.events.subscribe());
            result(Ok(EventsSubscribeResult { status: d.status() }))
        }
        R::GrantsAdd(p) => result(grants::add(d, p).await),
        R::GrantsList(p) => result(grants::list(d, p)),
        R::LoginRecord(p) => result(logins::record(d, p)),
        R::Logout(p) => result(logins::logout(d, p).await),
        R::ProvidersStatus(_) => result(logins::status(d)),
        R::AuditQuery(p) => result(h::audit_query(d, p)),
        R::BoxOpen(p) => result(super::boxes::open(d, p, peer, door).await),
        R::BoxStarted(p) => result(super::boxes::started(d, p, peer).await),
        R::BoxClose(p) => result(super::boxes::close(d, p, peer)),
        R::McpAdd(p) => result(admin::add(d, p)),
        R::McpList(_) => result(admin::list(d)),
        R::McpRemove(p) => result(admin::remove(d, p).await),
    }
}
