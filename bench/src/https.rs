//! The egress proxy's benchmark: a kept-alive HTTPS GET of 1 KiB from a
//! local upstream, sent directly and through a box's proxy by the same
//! client (hyper over rustls, one pooled connection per concurrent
//! worker; through the proxy, `CONNECT` first).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::{Request, Response};
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::stats::Samples;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Serves `GET` with `size` bytes on 127.0.0.1:`port` over TLS until killed.
pub async fn serve(cert: &str, key: &str, port: u16, size: usize) -> anyhow::Result<()> {
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(cert)?.collect::<Result<_, _>>()?;
    let key = PrivateKeyDer::from_pem_file(key)?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let body = Bytes::from(vec![b'x'; size]);
    println!("ready");
    loop {
        let (tcp, _) = listener.accept().await?;
        let (acceptor, body) = (acceptor.clone(), body.clone());
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let service =
                hyper::service::service_fn(move |_req: Request<hyper::body::Incoming>| {
                    let body = body.clone();
                    async move { Ok::<_, std::convert::Infallible>(Response::new(Full::new(body))) }
                });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), service)
                .await;
        });
    }
}

/// What to load.
pub struct Load {
    /// The URL to GET.
    pub url: String,
    /// An HTTP proxy to `CONNECT` through.
    pub proxy: Option<String>,
    /// The CA bundle to trust.
    pub ca: String,
    /// An `Authorization` value to send.
    pub authorization: Option<String>,
    /// Concurrent workers (and connections).
    pub concurrency: usize,
    /// How long to measure, after a warm-up.
    pub duration: Duration,
}

type Get = Box<
    dyn Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<usize>> + Send>>
        + Send
        + Sync,
>;

fn getter<C>(client: Client<C, Empty<Bytes>>, l: &Load) -> anyhow::Result<Get>
where
    C: hyper_util::client::legacy::connect::Connect + Clone + Send + Sync + 'static,
{
    let uri: hyper::Uri = l.url.parse()?;
    let auth = l.authorization.clone();
    Ok(Box::new(move || {
        let mut b = Request::get(uri.clone());
        if let Some(a) = &auth {
            b = b.header(hyper::header::AUTHORIZATION, a);
        }
        let (client, req) = (client.clone(), b.body(Empty::new()));
        Box::pin(async move {
            let resp = client.request(req?).await?;
            let ok = resp.status().is_success();
            let n = resp.into_body().collect().await?.to_bytes().len();
            anyhow::ensure!(ok, "status not 2xx");
            Ok(n)
        })
    }))
}

fn client(l: &Load) -> anyhow::Result<Get> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(&l.ca)? {
        let _ = roots.add(c?);
    }
    let tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only()
        .enable_http1();
    let pool = |b: &mut hyper_util::client::legacy::Builder| {
        b.pool_max_idle_per_host(l.concurrency);
    };
    let mut cb = Client::builder(TokioExecutor::new());
    pool(&mut cb);
    match &l.proxy {
        Some(p) => {
            let tunnel = Tunnel::new(p.parse()?, HttpConnector::new());
            getter(cb.build(builder.wrap_connector(tunnel)), l)
        }
        None => getter(cb.build(builder.build()), l),
    }
}

/// Runs `l`: each worker sends GETs back to back for the duration.
pub async fn load(l: &Load) -> anyhow::Result<Samples> {
    let get = Arc::new(client(l)?);
    // Warm-up: every worker's connection made (and, through the proxy,
    // the token fetched once).
    let warm: Vec<_> = (0..l.concurrency).map(|_| get()).collect();
    for w in warm {
        w.await?;
    }
    let start = Instant::now();
    let end = start + l.duration;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..l.concurrency {
        let get = get.clone();
        tasks.spawn(async move {
            let mut s = Samples::default();
            while Instant::now() < end {
                let t = Instant::now();
                match get().await {
                    Ok(_) => s.ns.push(t.elapsed().as_nanos() as u64),
                    Err(_) => s.errors += 1,
                }
            }
            s
        });
    }
    let mut all = Samples::default();
    while let Some(s) = tasks.join_next().await {
        all.merge(s?);
    }
    all.secs = start.elapsed().as_secs_f64();
    Ok(all)
}
