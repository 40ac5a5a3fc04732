//! The proxy's side toward the providers: one pooled HTTPS client per
//! provider (the system's roots plus the provider's `ca_file`, as its
//! OAuth client trusts, and its `connect_to`, as its OAuth client
//! dials), and the TLS server configurations that end a
//! box's connection with a leaf from the box's CA.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use hyper::Uri;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use valetkey_core::config::Provider;
use valetkey_core::proxy::ca::Leaf;

/// The body of every request and response the proxy passes on.
pub type Body = BoxBody<Bytes, hyper::Error>;

/// An HTTPS client.
pub type Https = Client<hyper_rustls::HttpsConnector<Dial>, Body>;

/// The TCP side of a provider's client: [`HttpConnector`], sending a
/// connection for a host in the provider's `connect_to` to the address
/// given there. TLS still checks the name the request was for (the
/// connector above takes it from the original URI).
#[derive(Clone)]
pub struct Dial {
    tcp: HttpConnector,
    to: Arc<BTreeMap<String, SocketAddr>>,
}

impl tower_service::Service<Uri> for Dial {
    type Response = <HttpConnector as tower_service::Service<Uri>>::Response;
    type Error = <HttpConnector as tower_service::Service<Uri>>::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.tcp.poll_ready(cx)
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        let to = dst
            .host()
            .and_then(|h| self.to.get(&h.to_ascii_lowercase()))
            .and_then(|addr| {
                Uri::builder()
                    .scheme("https")
                    .authority(addr.to_string())
                    .path_and_query("/")
                    .build()
                    .ok()
            });
        Box::pin(self.tcp.call(to.unwrap_or(dst)))
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The roots a provider's upstream is checked against.
fn roots(p: &Provider) -> Result<rustls::RootCertStore, String> {
    let mut roots = rustls::RootCertStore::empty();
    let mut add = |pem: &[u8], from: &str| -> Result<(), String> {
        for c in CertificateDer::pem_slice_iter(pem) {
            let c = c.map_err(|e| format!("{from}: {e}"))?;
            // A bundle may hold a certificate rustls cannot use; skip it.
            let _ = roots.add(c);
        }
        Ok(())
    };
    for path in valetkey_core::boxes::SYSTEM_ROOTS {
        if let Ok(pem) = std::fs::read(path) {
            add(&pem, path)?;
            break;
        }
    }
    if let Some(ca) = &p.ca_file {
        let pem = std::fs::read(ca).map_err(|e| format!("ca_file {}: {e}", ca.display()))?;
        add(&pem, &ca.display().to_string())?;
    }
    Ok(roots)
}

fn client_for(p: &Provider) -> Result<Https, String> {
    let tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots(p)?)
        .with_no_client_auth();
    let mut tcp = HttpConnector::new();
    tcp.enforce_http(false);
    let dial = Dial {
        tcp,
        to: Arc::new(p.connect_to.clone()),
    };
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only()
        .enable_http1()
        .wrap_connector(dial);
    Ok(Client::builder(TokioExecutor::new()).build(https))
}

/// Clients by provider, and TLS server configurations by box and host.
#[derive(Default)]
pub struct Upstreams {
    clients: Mutex<HashMap<String, Https>>,
    servers: Mutex<HashMap<(String, String), Arc<rustls::ServerConfig>>>,
}

impl Upstreams {
    /// The client for provider `p` (made once).
    pub fn client(&self, p: &Provider) -> Result<Https, String> {
        let mut m = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = m.get(&p.name) {
            return Ok(c.clone());
        }
        let c = client_for(p)?;
        m.insert(p.name.clone(), c.clone());
        Ok(c)
    }

    /// The TLS server configuration presenting `leaf` for `host` in box
    /// `id` (made once).
    pub fn server(
        &self,
        id: &str,
        host: &str,
        leaf: &Leaf,
    ) -> Result<Arc<rustls::ServerConfig>, String> {
        let key = (id.to_owned(), host.to_owned());
        let mut m = self.servers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = m.get(&key) {
            return Ok(c.clone());
        }
        let chain = leaf
            .chain
            .iter()
            .map(|c| CertificateDer::from(c.clone()))
            .collect();
        let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf.key_pkcs8.to_vec()));
        let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_no_client_auth()
            .with_single_cert(chain, der)
            .map_err(|e| format!("leaf for {host}: {e}"))?;
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        let cfg = Arc::new(cfg);
        m.insert(key, cfg.clone());
        Ok(cfg)
    }

    /// Forgets box `id`'s TLS configurations (it closed).
    pub fn forget(&self, id: &str) {
        self.servers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|(b, _), _| b != id);
    }
}
