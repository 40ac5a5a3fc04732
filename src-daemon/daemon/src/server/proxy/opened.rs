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
use valetkey_core::proxy::BoxProxy;

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

/// The body, read whole when the rules need its GraphQL operation type.
async fn body_and_operation(
    ctx: &Ctx,
    provider: &str,
    role: &str,
    parts: &http::request::Parts,
    body: hyper::body::Incoming,
) -> Result<(Body, Option<valetkey_core::config::rules::Operation>), Response<Body>> {
    let reads = parts.method == hyper::Method::POST
        && ctx
            .d
            .config
            .provider(provider)
            .and_then(|p| p.proxy.as_ref())
            .is_some_and(|x| x.rules.reads_graphql(role, parts.uri.path()));
    if !reads {
        return Ok((body.boxed(), None));
    }
    let bytes = match Limited::new(body, GRAPHQL_MAX).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return Err(json(
                413,
                r#"{"error":{"message":"a GraphQL body over 1 MiB is not passed on"}}"#.into(),
            ))
        }
    };
    let op = valetkey_core::proxy::graphql::operation_of(&bytes);
    Ok((full(bytes), op))
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
    let (body, graphql) = match body_and_operation(ctx, provider, &ph.role, &parts, body).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let (Some(p), Some(g)) = (ctx.d.provider(provider), ctx.caller.greeted()) else {
        return json(
            503,
            r#"{"error":{"message":"the provider is no longer configured"}}"#.into(),
        );
    };
    let target = Target {
        method: parts.method.as_str(),
        role: &ph.role,
        path: parts.uri.path(),
        query: parts.uri.query().unwrap_or(""),
        graphql,
    };
    let auth = parts
        .headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let asked = Asked {
        target,
        authorization: auth,
    };
    let (value, allowed) = match request::decide(&ctx.d, bx, g, &p, ph, &asked).await {
        Answer::Refuse { status, body } => return json(status, body),
        Answer::Forward => (None, None),
        Answer::Authorize {
            value,
            rule,
            scopes,
        } => (Some(value), Some((rule, scopes))),
    };
    let auth = match value.as_ref().map(|v| HeaderValue::from_str(v.expose())) {
        Some(Ok(mut v)) => {
            v.set_sensitive(true);
            Some(v)
        }
        Some(Err(_)) => {
            return json(
                502,
                r#"{"error":{"message":"the provider's token cannot be sent in a header"}}"#.into(),
            )
        }
        None => None,
    };
    let client = match ctx.proxy.upstreams.client(&p) {
        Ok(c) => c,
        Err(e) => {
            return json(
                502,
                serde_json::json!({ "error": { "message": e } }).to_string(),
            )
        }
    };
    let resp = send(&client, ph, &parts, body, auth).await;
    if let Some((rule, scopes)) = &allowed {
        let a = Allowed {
            provider,
            host: &ph.host,
            rule,
            scopes,
        };
        request::allowed(&ctx.d, bx, g, &target, &a, resp.status().as_u16());
    }
    resp
}

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
