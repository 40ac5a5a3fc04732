//! The egress proxy of boxes in `proxy` mode: an HTTP proxy on a loopback
//! listener inside each such box. `valetkey box-exec` makes the listener
//! (127.0.0.1:3128 in the box's own network namespace, which nothing but
//! the box can reach) and hands it over on the box's `proxy.sock`
//! (`SCM_RIGHTS`); the daemon checks the sender is inside the box and the
//! socket is a listening TCP socket on loopback, then accepts the box's
//! connections on it itself. The decisions are [`valetkey_core::proxy`]'s;
//! this module is the sockets, TLS and HTTP around them (hyper, rustls).
//!
//! On the outer connection a client says `CONNECT host:port` (or sends
//! an absolute-form `http://` request). A provider's host is *opened*:
//! the proxy answers `200`, ends TLS with a leaf from the box's CA and
//! serves the requests inside ([`opened`]). A host of the profile is
//! tunnelled byte for byte. Anything else gets `403` with a JSON body
//! and an audit record.
//!
//! Requests are made as the box's agent: one [`Caller`] per box, greeted
//! once with the box's agent name and attested from the process that
//! handed the listener over, so grants, consent and the audit trail see
//! the same agent as the box's own `agent.sock`.

mod handover;
mod opened;
pub mod upstream;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::{UnixListener, UnixStream};

use valetkey_core::boxes::BoxSession;
use valetkey_core::broker::Shared;
use valetkey_core::caller::Caller;
use valetkey_core::proxy::Door;
use valetkey_ipc::methods::{AgentInfo, HelloParams};

use upstream::{Body, Upstreams};

/// What every box's proxy shares: upstream clients, TLS configurations
/// and each box's caller.
#[derive(Default)]
pub struct Proxy {
    /// Clients and server configurations.
    pub upstreams: Upstreams,
    callers: Mutex<HashMap<String, Arc<Caller>>>,
    next_session: AtomicU64,
}

/// One box's proxy connection, as the handlers need it.
#[derive(Clone)]
struct Ctx {
    d: Shared,
    proxy: Arc<Proxy>,
    session: Arc<BoxSession>,
    caller: Arc<Caller>,
}

/// Connections on proxy sockets are numbered apart from the daemon's
/// (repeat hand-outs are counted per connection number).
const FIRST_SESSION: u64 = 1 << 48;

/// Binds box `session`'s `proxy.sock`, takes the box's listener on it,
/// and serves the box until it closes.
pub fn serve(d: &Shared, proxy: &Arc<Proxy>, session: Arc<BoxSession>) -> Result<(), String> {
    let path = session.socket_dir.join("proxy.sock");
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let (d, proxy) = (d.clone(), proxy.clone());
    tokio::spawn(async move {
        let mut closed = session.closed();
        loop {
            tokio::select! {
                s = listener.accept() => match s {
                    Ok((stream, _)) => {
                        let (d, proxy, session) = (d.clone(), proxy.clone(), session.clone());
                        tokio::spawn(async move { take_listener(d, proxy, session, stream).await });
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "proxy accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    }
                },
                _ = closed.changed() => break,
            }
        }
        finish(&d, &proxy, &session);
    });
    Ok(())
}

/// The box closed: its counted requests are written, its state dropped.
fn finish(d: &Shared, proxy: &Proxy, session: &BoxSession) {
    let id = &session.facts.id;
    let caller = proxy
        .callers
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(id);
    if let (Some(c), Some(bx)) = (caller, &session.proxy) {
        if let Some(g) = c.greeted() {
            valetkey_core::proxy::request::flush(d, bx, g);
        }
    }
    proxy.upstreams.forget(id);
}

/// Takes the listener a box hands over on `stream`, answers `k` (or why
/// not), and serves the box's connections on it until the box closes.
async fn take_listener(d: Shared, proxy: Arc<Proxy>, session: Arc<BoxSession>, stream: UnixStream) {
    let taken = async {
        let std_stream = stream.into_std().map_err(|e| e.to_string())?;
        std_stream
            .set_nonblocking(false)
            .map_err(|e| e.to_string())?;
        let (d2, s2) = (d.clone(), session.clone());
        let n = FIRST_SESSION + proxy.next_session.fetch_add(1, Ordering::Relaxed);
        let (listener, caller, std_stream) =
            tokio::task::spawn_blocking(move || handover::receive(&d2, &s2, std_stream, n))
                .await
                .map_err(|e| e.to_string())??;
        let mut m = proxy.callers.lock().unwrap_or_else(|e| e.into_inner());
        if m.contains_key(&session.facts.id) {
            return Err("this box's proxy listener was handed over already".to_owned());
        }
        m.insert(session.facts.id.clone(), caller.clone());
        Ok((listener, caller, std_stream))
    }
    .await;
    let (listener, caller, mut answer) = match taken {
        Ok(t) => t,
        Err(why) => {
            tracing::warn!(id = %session.facts.id, %why, "box proxy listener refused");
            return;
        }
    };
    use std::io::Write;
    let _ = answer.write_all(b"k");
    drop(answer);
    let mut closed = session.closed();
    loop {
        tokio::select! {
            s = listener.accept() => match s {
                Ok((tcp, _)) => {
                    let _ = tcp.set_nodelay(true);
                    let ctx = Ctx { d: d.clone(), proxy: proxy.clone(), session: session.clone(), caller: caller.clone() };
                    tokio::spawn(connection(ctx, tcp));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "box proxy accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
            _ = closed.changed() => return,
        }
    }
}

/// Serves one connection from inside the box.
async fn connection(ctx: Ctx, stream: tokio::net::TcpStream) {
    let service = hyper::service::service_fn(move |req| {
        let ctx = ctx.clone();
        async move { Ok::<_, std::convert::Infallible>(outer(ctx, req).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    if let Err(e) = conn.await {
        tracing::debug!(error = %e, "proxy connection ended");
    }
}

/// Attests `pid` inside the box and says hello as the box's agent.
pub(super) fn greet(
    d: &Shared,
    s: &BoxSession,
    pid: u32,
    uid: u32,
    session: u64,
) -> Result<Arc<Caller>, String> {
    s.admits(pid)?;
    let mut identity = d.attestor.attest(pid, uid).map_err(|e| e.to_string())?;
    identity.foreign_namespaces.clear();
    identity.confinement = Some(s.facts.clone());
    let mut caller = Caller::new(session, identity);
    let hello = HelloParams {
        protocol: valetkey_ipc::PROTOCOL_VERSION,
        agent: AgentInfo {
            name: s.agent.clone(),
            version: String::new(),
            purpose: "requests through the box's egress proxy".into(),
        },
        delegation: None,
    };
    valetkey_core::access::hello::handle(d, &mut caller, hello).map_err(|e| e.to_string())?;
    Ok(Arc::new(caller))
}

/// A response with a JSON body.
fn json(status: u16, body: String) -> Response<Body> {
    let mut r = Response::new(full(body));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::FORBIDDEN);
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).map_err(|never| match never {}).boxed()
}

/// `host:port` of a `CONNECT` or an absolute-form request.
fn authority(req: &Request<hyper::body::Incoming>) -> Option<(String, u16)> {
    let uri = req.uri();
    let host = uri
        .host()?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    let port = uri
        .port_u16()
        .unwrap_or(if uri.scheme_str() == Some("http") {
            80
        } else {
            443
        });
    Some((host, port))
}

/// The outer connection: `CONNECT`, or a plain-HTTP request.
async fn outer(ctx: Ctx, req: Request<hyper::body::Incoming>) -> Response<Body> {
    let method = req.method().as_str().to_owned();
    let Some((host, port)) = authority(&req) else {
        return json(400, r#"{"error":{"message":"this is an HTTP proxy: send CONNECT host:port, or an absolute http:// URL"}}"#.into());
    };
    let Some(bx) = ctx.session.proxy.clone() else {
        return json(503, r#"{"error":{"message":"this box has no proxy any more (the daemon restarted); start the box again"}}"#.into());
    };
    match bx.door(&ctx.d.config, &host, port) {
        Door::Refuse(why) => {
            let g = ctx.caller.greeted();
            let body = match g {
                Some(g) => valetkey_core::proxy::request::host_refused(&ctx.d, g, &method, &host, port, &why),
                None => why,
            };
            json(403, body)
        }
        _ if method != "CONNECT" => json(
            405,
            r#"{"error":{"message":"plain http:// is not proxied; use https:// (the proxy takes CONNECT)"}}"#.into(),
        ),
        Door::Tunnel => tunnel(req, host, port).await,
        Door::Open { provider, host: ph } => {
            let (provider, ph) = (provider.name.clone(), ph.clone());
            opened::connect(ctx, bx, req, provider, ph)
        }
    }
}

/// Connects to `host:port`, answers `200`, and passes bytes between the
/// box and it.
async fn tunnel(req: Request<hyper::body::Incoming>, host: String, port: u16) -> Response<Body> {
    let mut upstream = match tokio::net::TcpStream::connect((host.as_str(), port)).await {
        Ok(s) => s,
        Err(e) => {
            let msg = serde_json::json!({ "error": { "message": format!("cannot reach {host}:{port}: {e}") } });
            return json(502, msg.to_string());
        }
    };
    tokio::spawn(async move {
        let Ok(upgraded) = hyper::upgrade::on(req).await else {
            return;
        };
        let mut io = TokioIo::new(upgraded);
        let _ = tokio::io::copy_bidirectional(&mut io, &mut upstream).await;
    });
    Response::new(full(Bytes::new()))
}
