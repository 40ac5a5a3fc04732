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

pub mod agent;
pub mod boxed;
mod handover;
mod masked;
mod opened;
pub mod upstream;

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use valetkey_core::broker::Shared;
use valetkey_core::caller::Caller;
use valetkey_core::proxy::Door;

use upstream::{Body, Upstreams};

/// What every proxy shares: the runtime they run on, upstream clients,
/// TLS configurations and each box's caller.
///
/// Proxies run on a runtime of their own, on one thread: a request passes
/// from the box's connection to the provider's and back, and on one
/// thread those hand-offs are function calls, where on the daemon's
/// worker threads each was a wake-up of another thread (the profile was
/// mostly context switches).
pub struct Proxy {
    /// The proxies' runtime.
    pub rt: tokio::runtime::Handle,
    /// Clients and server configurations.
    pub upstreams: Upstreams,
    /// Each box's caller, by box id.
    callers: Mutex<HashMap<String, Arc<Caller>>>,
    /// Connection numbers for proxies' callers.
    next_session: AtomicU64,
}

/// One proxy's connection, as the handlers need it.
#[derive(Clone)]
struct Ctx {
    d: Shared,
    proxy: Arc<Proxy>,
    /// The proxy's state in the core (CA, placeholders, counts).
    bx: Arc<valetkey_core::proxy::BoxProxy>,
    /// Its key among the TLS configurations (the box id, or `a_…`).
    key: Arc<str>,
    /// The agent its requests are made as.
    caller: Arc<Caller>,
    /// Whose it is.
    who: Arc<Who>,
}

/// Whose proxy a connection reached.
enum Who {
    /// A box's: only the box can reach its listener.
    Boxed,
    /// An unboxed agent's (`proxy.open`): each `CONNECT` must carry the
    /// proxy's own credentials, and come from the agent or a process it
    /// started.
    Agent {
        /// `Basic base64(valetkey:SECRET)`.
        authorization: String,
        /// The agent's pid.
        pid: u32,
    },
}

impl Proxy {
    /// Starts the proxies' runtime on a thread of its own.
    pub fn start() -> std::io::Result<Proxy> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .thread_name("valetkeyd-proxy")
            .build()?;
        let handle = rt.handle().clone();
        std::thread::Builder::new()
            .name("valetkeyd-proxy".into())
            .spawn(move || rt.block_on(std::future::pending::<()>()))?;
        Ok(Proxy::on(handle))
    }

    /// Proxies on runtime `rt` (the daemon's own, if a thread of their
    /// own could not be had).
    pub fn on(rt: tokio::runtime::Handle) -> Proxy {
        Proxy {
            rt,
            upstreams: Upstreams::default(),
            callers: Mutex::default(),
            next_session: AtomicU64::new(0),
        }
    }
}

/// How often the allowed requests counted since their first record are
/// written (as `token.reused` counts are), besides when the proxy ends.
const FLUSH_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// Connections on proxy sockets are numbered apart from the daemon's
/// (repeat hand-outs are counted per connection number).
const FIRST_SESSION: u64 = 1 << 48;

/// Serves one connection to a proxy.
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

/// `host:port` of a `CONNECT` or an absolute-form request, the host as
/// the rules name it (lower case, one trailing dot dropped).
fn authority(req: &Request<hyper::body::Incoming>) -> Option<(String, u16)> {
    let uri = req.uri();
    let host = valetkey_core::proxy::canonical::host(
        uri.host()?.trim_start_matches('[').trim_end_matches(']'),
    )?;
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
    if let Who::Agent { authorization, .. } = &*ctx.who {
        let sent = req.headers().get(hyper::header::PROXY_AUTHORIZATION);
        if sent.map(|v| v.as_bytes()) != Some(authorization.as_bytes()) {
            let mut r = json(407, r#"{"error":{"message":"this proxy is one agent's: use the proxy_url proxy.open gave it, credentials included"}}"#.into());
            // Clients that wait to be asked (git's libcurl) send them now.
            r.headers_mut().insert(
                hyper::header::PROXY_AUTHENTICATE,
                hyper::header::HeaderValue::from_static("Basic realm=\"valetkey\""),
            );
            return r;
        }
    }
    let bx = ctx.bx.clone();
    let door = match (bx.door(&ctx.d.providers(), &host, port), &*ctx.who) {
        // An unboxed agent has the network anyway: only providers' hosts
        // are opened, the rest is passed through.
        (Door::Refuse(_), Who::Agent { .. }) => Door::Tunnel,
        (d, _) => d,
    };
    match door {
        Door::Refuse(why) => {
            let g = ctx.caller.greeted();
            let body = match g {
                Some(g) => valetkey_core::access::proxied::host_refused(&ctx.d, g, &method, &host, port, &why),
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
