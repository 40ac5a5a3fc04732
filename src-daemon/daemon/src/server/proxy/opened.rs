//! An opened host: TLS from the box ends here with a leaf of the box's
//! CA, and each request inside is decided by
//! [`valetkey_core::access::proxied::decide`], then passed on to the
//! provider over a TLS connection of the proxy's own, with the token
//! written in where the decision says so.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::header::{HeaderName, HeaderValue, AUTHORIZATION};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

use valetkey_core::access::proxied::{self as request, Allowed, Answer, Asked};
use valetkey_core::config::proxy::ProxyHost;
use valetkey_core::config::rules::Target;
use valetkey_core::config::Provider;
use valetkey_core::proxy::BoxProxy;
use valetkey_ipc::policy::PolicyMcp;

use super::upstream::Body;
use super::{full, json, Ctx};

/// The largest GraphQL body read to find its operation type.
const GRAPHQL_MAX: usize = 1 << 20;

/// Headers that belong to one hop, never passed on.
const HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
];

/// Answers a `CONNECT` to a provider's host: `200`, then TLS with the
/// box's leaf for it and HTTP/1.1 inside.
pub(super) fn connect(
    ctx: Ctx,
    bx: Arc<BoxProxy>,
    req: Request<hyper::body::Incoming>,
    provider: String,
    ph: ProxyHost,
) -> Response<Body> {
    let id = ctx.key.clone();
    let cfg = bx
        .ca
        .leaf(&ph.host)
        .and_then(|leaf| ctx.proxy.upstreams.server(&id, &ph.host, &leaf));
    let cfg = match cfg {
        Ok(c) => c,
        Err(e) => {
            return json(
                500,
                serde_json::json!({ "error": { "message": e } }).to_string(),
            )
        }
    };
    tokio::spawn(async move {
        let Ok(upgraded) = hyper::upgrade::on(req).await else {
            return;
        };
        let tls = match tokio_rustls::TlsAcceptor::from(cfg)
            .accept(TokioIo::new(upgraded))
            .await
        {
            Ok(t) => t,
            Err(e) => {
                tracing::info!(host = %ph.host, error = %e, "TLS from the box failed (does the client trust the box's CA bundle?)");
                return;
            }
        };
        let (ph, provider) = (Arc::new(ph), Arc::new(provider));
        let service = hyper::service::service_fn(move |req| {
            let (ctx, bx, ph, provider) = (ctx.clone(), bx.clone(), ph.clone(), provider.clone());
            async move { Ok::<_, std::convert::Infallible>(inner(&ctx, &bx, &provider, &ph, req).await) }
        });
        let conn =
            hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tls), service);
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "opened connection ended");
        }
    });
    Response::new(full(Bytes::new()))
}

/// A request's body as the proxy holds it: read whole when the rules or
/// the policy look into it (a GraphQL operation, an MCP message), which
/// also lets it be sent again; else streamed through.
enum Held {
    Read(Bytes),
    Streamed(Body),
}

impl Held {
    fn body(&mut self) -> Body {
        match self {
            Held::Read(b) => full(b.clone()),
            Held::Streamed(b) => std::mem::replace(b, full(Bytes::new())),
        }
    }
}

/// What the body says, for the rules and the policy.
struct Read {
    body: Held,
    graphql: Option<valetkey_core::config::rules::Operation>,
    mcp: Option<Arc<PolicyMcp>>,
}

fn refuse(status: u16, message: &str) -> Response<Body> {
    json(
        status,
        serde_json::json!({ "error": { "message": message } }).to_string(),
    )
}

/// Reads the body whole when `p`'s rules need its GraphQL operation type
/// or `p` is an MCP server (the policy sees the method and tool).
async fn read_body(
    p: &Provider,
    role: &str,
    parts: &http::request::Parts,
    body: hyper::body::Incoming,
) -> Result<Read, Response<Body>> {
    let graphql = parts.method == hyper::Method::POST
        && p.proxy
            .as_ref()
            .is_some_and(|x| x.rules.reads_graphql(role, parts.uri.path()));
    let (limit, what) = match (&p.mcp, graphql) {
        (Some(_), _) => (valetkey_core::mcp::jsonrpc::MAX_BODY, "an MCP message"),
        (None, true) => (GRAPHQL_MAX, "a GraphQL body"),
        (None, false) => {
            return Ok(Read {
                body: Held::Streamed(body.boxed()),
                graphql: None,
                mcp: None,
            })
        }
    };
    let bytes = match Limited::new(body, limit).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return Err(refuse(413, &format!("{what} over 1 MiB is not passed on"))),
    };
    let mcp = match &p.mcp {
        Some(server) => {
            let call = valetkey_core::mcp::jsonrpc::call_of(&bytes).map_err(|e| refuse(400, &e))?;
            Some(Arc::new(PolicyMcp {
                server: server.name.clone(),
                url: server.url.clone(),
                method: call.method,
                tool: call.tool,
            }))
        }
        None => None,
    };
    let graphql = graphql
        .then(|| valetkey_core::proxy::graphql::operation_of(&bytes))
        .flatten();
    Ok(Read {
        body: Held::Read(bytes),
        graphql,
        mcp,
    })
}

/// One request inside an opened connection.
async fn inner(
    ctx: &Ctx,
    bx: &BoxProxy,
    provider: &str,
    ph: &ProxyHost,
    req: Request<hyper::body::Incoming>,
) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let (Some(p), Some(g)) = (ctx.d.provider(provider), ctx.caller.greeted()) else {
        return refuse(503, "the provider is no longer configured");
    };
    if let Some(why) = valetkey_core::proxy::canonical::refusal(parts.uri.path()) {
        let m = parts.method.as_str();
        return json(
            400,
            request::malformed(&ctx.d, g, m, &ph.host, parts.uri.path(), &why),
        );
    }
    let mut read = match read_body(&p, &ph.role, &parts, body).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let asked = Asked {
        target: Target {
            method: parts.method.as_str(),
            role: &ph.role,
            path: parts.uri.path(),
            query: parts.uri.query().unwrap_or(""),
            graphql: read.graphql,
        },
        authorization: parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok()),
        mcp: read.mcp.clone(),
    };
    let req = One {
        ctx,
        bx,
        g,
        p: &p,
        ph,
        parts: &parts,
        asked: &asked,
    };
    let sent = req.send_and_retry(&mut read.body).await;
    let (resp, allowed) = sent;
    let status = resp.status().as_u16();
    if let Some((rule, scopes, _)) = &allowed {
        let a = Allowed {
            provider,
            host: &ph.host,
            rule,
            scopes,
        };
        request::allowed(&ctx.d, bx, g, &asked.target, &a, status);
    }
    if let Some(m) = &asked.mcp {
        request::mcp_called(&ctx.d, g, m, status);
    }
    resp
}

/// The scopes an MCP server asked for in a `403 insufficient_scope`
/// answer to a request the proxy wrote a token into (a step-up).
fn insufficient_scope(p: &Provider, sent: &(Response<Body>, Used)) -> Option<Vec<String>> {
    if p.mcp.is_none() || sent.1.is_none() || sent.0.status() != hyper::StatusCode::FORBIDDEN {
        return None;
    }
    let values = sent
        .0
        .headers()
        .get_all(hyper::header::WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok());
    let c = valetkey_core::mcp::challenge::bearer(values)?;
    let wanted = c.scopes();
    (c.param("error") == Some("insufficient_scope") && !wanted.is_empty()).then_some(wanted)
}

/// One request on its way, with everything a retry needs.
struct One<'a> {
    ctx: &'a Ctx,
    bx: &'a BoxProxy,
    g: valetkey_core::caller::Greeted<'a>,
    p: &'a Provider,
    ph: &'a ProxyHost,
    parts: &'a http::request::Parts,
    asked: &'a Asked<'a>,
}

impl One<'_> {
    /// Decides the request, writes the token in, and sends it on.
    async fn attempt(&self, body: &mut Held) -> (Response<Body>, Used) {
        let (ctx, p, ph) = (self.ctx, self.p, self.ph);
        let decided = request::decide(&ctx.d, self.bx, self.g, p, ph, self.asked).await;
        let (value, allowed, masker) = match decided {
            Answer::Refuse { status, body } => return (json(status, body), None),
            Answer::Forward => (None, None, None),
            Answer::Authorize {
                value,
                rule,
                scopes,
                token_id,
                masker,
            } => (Some(value), Some((rule, scopes, token_id)), Some(masker)),
        };
        let auth = match value.as_ref().map(|v| HeaderValue::from_str(v.expose())) {
            Some(Ok(mut v)) => {
                v.set_sensitive(true);
                Some(v)
            }
            Some(Err(_)) => {
                return (
                    refuse(502, "the provider's token cannot be sent in a header"),
                    None,
                )
            }
            None => None,
        };
        let client = match ctx.proxy.upstreams.client(p) {
            Ok(c) => c,
            Err(e) => return (refuse(502, &e), None),
        };
        let resp = send(&client, ph, self.parts, body.body(), auth).await;
        let resp = match masker {
            // What comes back into the box carries no form of the token.
            Some(m) => {
                let (resp, hits) = super::masked::response(resp, m);
                if hits > 0 {
                    tracing::warn!(forms = hits, host = %ph.host, "response headers carried the token the proxy wrote in; masked");
                }
                resp
            }
            None => resp,
        };
        (resp, allowed)
    }

    /// Sends; then, with the body read whole, once more when the server
    /// says the token is no longer valid (expired early, revoked there:
    /// only the first request to see the dead token drops it, so a burst
    /// costs one refresh), or asks for more scopes (a step-up the user
    /// allows).
    async fn send_and_retry(&self, body: &mut Held) -> (Response<Body>, Used) {
        let mut sent = self.attempt(body).await;
        if let (401, Some((_, _, id)), Held::Read(_)) = (sent.0.status().as_u16(), &sent.1, &*body)
        {
            self.ctx.d.tokens.cache.drop_id(self.g.id, *id);
            sent = self.attempt(body).await;
        }
        if let Some(scope) = self.unheld(&sent, body) {
            let d = &self.ctx.d;
            return match request::ask_unheld(d, self.bx, self.g, self.p, &scope).await {
                Ok(()) => self.attempt(body).await,
                Err(e) => refused(e),
            };
        }
        let Some(wanted) = insufficient_scope(self.p, &sent) else {
            return sent;
        };
        match request::step_up(&self.ctx.d, self.bx, self.g, self.p, self.asked, &wanted).await {
            Ok(()) => self.attempt(body).await,
            Err(e) => refused(e),
        }
    }

    /// The scope to ask the user for when the provider turned away a
    /// request passed on with no credential (the box holds nothing for
    /// it), if it can be sent again: its body is read whole, or it is a
    /// `GET` or `HEAD` (whose body is empty).
    fn unheld(&self, sent: &(Response<Body>, Used), body: &Held) -> Option<String> {
        let again = matches!(body, Held::Read(_))
            || matches!(self.parts.method, hyper::Method::GET | hyper::Method::HEAD);
        if sent.1.is_some() || !again {
            return None;
        }
        let status = sent.0.status().as_u16();
        request::unheld_scope(&self.ctx.d, self.bx, self.g, self.p, self.asked, status)
    }
}

/// A refusal from the broker, as the box's client sees it.
fn refused(e: valetkey_core::error::BrokerError) -> (Response<Body>, Used) {
    let e: valetkey_ipc::RpcError = e.into();
    (json(403, request::body(&e)), None)
}

/// What was allowed: the rule, the scopes and the token's id.
type Used = Option<(String, Vec<String>, u64)>;

/// Passes the request on to `ph` and returns its answer (or a `502`).
async fn send(
    client: &super::upstream::Https,
    ph: &ProxyHost,
    parts: &http::request::Parts,
    body: Body,
    auth: Option<HeaderValue>,
) -> Response<Body> {
    let pq = parts.uri.path_and_query().map_or("/", |x| x.as_str());
    let uri = format!("https://{}:{}{}", ph.host, ph.port, pq);
    let mut b = Request::builder().method(parts.method.clone()).uri(uri);
    let named: Vec<String> = parts
        .headers
        .get_all(hyper::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|n| n.trim().to_ascii_lowercase()))
        .collect();
    for (k, v) in &parts.headers {
        let n = k.as_str();
        if HOP.contains(&n)
            || named.iter().any(|x| x == n)
            || (auth.is_some() && *k == AUTHORIZATION)
        {
            continue;
        }
        b = b.header(k, v);
    }
    if let Some(v) = auth {
        b = b.header(AUTHORIZATION, v);
    }
    let req = match b.body(body) {
        Ok(r) => r,
        Err(e) => {
            return json(
                400,
                serde_json::json!({ "error": { "message": e.to_string() } }).to_string(),
            )
        }
    };
    match client.request(req).await {
        Ok(resp) => {
            let (mut parts, body) = resp.into_parts();
            for h in HOP {
                parts.headers.remove(HeaderName::from_static(h));
            }
            Response::from_parts(parts, body.boxed())
        }
        Err(e) => {
            let msg = format!("cannot reach {}:{}: {e}", ph.host, ph.port);
            json(
                502,
                serde_json::json!({ "error": { "message": msg } }).to_string(),
            )
        }
    }
}
