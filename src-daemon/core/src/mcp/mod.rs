//! Remote MCP servers as providers: Valet Key is the machine's one MCP
//! OAuth client, so every MCP client on it shares one login per server,
//! under the same consent, policy, audit and revocation as any provider.
//!
//! * [`challenge`] reads the servers' `WWW-Authenticate` challenges;
//! * [`discover`] finds a server's authorization server, as the MCP
//!   authorization spec (revision 2025-11-25) orders it;
//! * [`register`] gets a client id there;
//! * [`handshake`] asks a server's `initialize` at `mcp add`, and answers
//!   an MCP client's `initialize` from what was recorded;
//! * [`sse`] reads the event streams of streamable HTTP;
//! * [`jsonrpc`] reads what a request to a server asks (method, tool),
//!   for the policy and the audit trail;
//! * [`stepup`] logs in again, from the daemon, when a server asks for
//!   more scopes than the login holds and the user allowed them;
//! * [`admin`] handles `mcp.add`, `mcp.list` and `mcp.remove`;
//! * [`Servers`] holds the added servers as [`Provider`]s, beside the
//!   configured ones (see [`crate::broker::Broker::provider`]).
//!
//! The CLI runs discovery, registration and the browser login (it has the
//! terminal and the browser); the daemon, the only writer of state, then
//! records the server. A server's provider is built here from what was
//! found: its `resource` is the audience every token is bound to (RFC 8707
//! at login and on each refresh), and its refresh token is kept in the
//! keychain under the issuer and the resource.

pub mod admin;
pub mod challenge;
pub mod discover;
pub mod handshake;
pub mod jsonrpc;
pub mod register;
pub mod sse;
pub mod stepup;

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use url::Url;
use valetkey_ipc::control::McpServer;

use crate::config::{Config, Endpoints, Provider};
use crate::store::Store;

/// Why discovery or registration failed.
#[derive(Debug, thiserror::Error)]
pub enum McpError {
    /// A server could not be reached, or answered with an error status.
    #[error("{url}: {detail}")]
    Http {
        /// What was asked.
        url: String,
        /// What happened.
        detail: String,
    },
    /// A document is missing, malformed, or fails a check.
    #[error("{what}: {detail}")]
    Invalid {
        /// Which document.
        what: String,
        /// What is wrong.
        detail: String,
    },
    /// The server cannot be used this way; the message says what to do.
    #[error("{0}")]
    Unsupported(String),
}

impl McpError {
    fn http(url: &Url, e: reqwest::Error) -> McpError {
        McpError::Http {
            url: url.to_string(),
            detail: format!("cannot reach it: {}", e.without_url()),
        }
    }
}

/// The start of a server's error body, printable.
pub(crate) fn excerpt(text: &str) -> String {
    let t: String = text.chars().filter(|c| !c.is_control()).take(200).collect();
    if t.is_empty() {
        "(no body)".into()
    } else {
        t
    }
}

/// Checks a server name: a provider name agents pass to `token.get`.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "MCP server name {name:?} must be 1 to 64 characters of a-z, 0-9, '.', '_' and '-'"
        ))
    }
}

/// Where a server's refresh token (and client secret) are kept: by the
/// authorization server and the resource, not by the name the user chose.
pub fn keychain_key(issuer: &str, resource: &str) -> String {
    format!("mcp:{} {}", issuer.trim_end_matches('/'), resource)
}

/// The scopes agents may be granted: the login's and the server's,
/// without `offline_access` (a login matter, not an agent's).
fn grantable(s: &McpServer) -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    for x in s.scopes.iter().chain(&s.scopes_supported) {
        if x != "offline_access" && !v.contains(x) {
            v.push(x.clone());
        }
    }
    v
}

fn parse_url(field: &str, v: &str) -> Result<Url, String> {
    let u = Url::parse(v).map_err(|e| format!("{field} {v:?} is not a URL: {e}"))?;
    if !discover::secure(&u) {
        return Err(format!(
            "{field} {u} must be https:// (plain http:// only on loopback)"
        ));
    }
    Ok(u)
}

/// The provider an MCP server is, checked as a config section would be.
pub fn provider_of(s: &McpServer) -> Result<Provider, String> {
    check_name(&s.name)?;
    let url = parse_url("url", &s.url)?;
    let resource = parse_url("resource", &s.resource)?;
    if !discover::resource_covers(&resource, &url) {
        return Err(format!("resource {resource} does not cover {url}"));
    }
    let endpoints = Endpoints {
        authorization: Some(parse_url(
            "authorization_endpoint",
            &s.authorization_endpoint,
        )?),
        token: Some(parse_url("token_endpoint", &s.token_endpoint)?),
        revocation: s
            .revocation_endpoint
            .as_deref()
            .map(|r| parse_url("revocation_endpoint", r))
            .transpose()?,
        device_authorization: None,
    };
    let allowed_scopes = grantable(s);
    if allowed_scopes.is_empty() {
        return Err("the server names no scopes; pass --scope".into());
    }
    let proxy = proxy_of(&url, &allowed_scopes)?;
    valetkey_ipc::methods::validate_scopes(&allowed_scopes).map_err(|e| format!("scopes: {e}"))?;
    if s.client_id.is_empty() {
        return Err("client_id is empty".into());
    }
    Ok(Provider {
        name: s.name.clone(),
        display_name: format!("MCP server {} ({})", s.name, url.host_str().unwrap_or("?")),
        issuer: None,
        endpoints,
        client_id: s.client_id.clone(),
        confidential: s.confidential,
        allowed_scopes,
        login_scopes: s.scopes.clone(),
        resource: Some(s.resource.clone()),
        // Whether an authorization server narrows on refresh is not
        // advertised; the login's token is what the server sees.
        narrows_on_refresh: false,
        allow_full_scope: true,
        extra_auth_params: BTreeMap::new(),
        ca_file: s.ca_file.as_ref().map(Into::into),
        connect_to: BTreeMap::new(),
        timeout: Duration::from_secs(10),
        revoke_agent_tokens: false,
        sensitivity: Default::default(),
        proxy: proxy.map(Arc::new),
        keychain_key: keychain_key(&s.issuer, &s.resource),
        mcp: Some(Arc::new(s.clone())),
    })
}

/// The proxy section of a server: its endpoint's host is opened (the
/// token is written in there, and only there), and every scope allows
/// the endpoint's path alone, so the token never goes to another path or
/// host. What a request may do beyond that is the policy's to say
/// (`input.mcp`: the method and tool).
/// `None` for a plain-`http://` loopback server: the egress proxy opens
/// TLS connections only (`CONNECT`).
fn proxy_of(
    url: &Url,
    scopes: &[String],
) -> Result<Option<crate::config::proxy::ProviderProxy>, String> {
    let host = url.host_str().ok_or("the URL has no host")?;
    let port = url.port_or_known_default().unwrap_or(443);
    if url.scheme() != "https" {
        return Ok(None);
    }
    let path = url.path();
    if path.contains(char::is_whitespace) || path.contains(['{', '}', '*', '?']) {
        return Err(format!(
            "the MCP endpoint's path {path:?} cannot be a proxy rule"
        ));
    }
    let rule = format!("POST|GET|DELETE mcp {path}");
    let f = crate::config::proxy::ProxyFile {
        hosts: [("mcp".to_owned(), format!("{host}:{port}"))].into(),
        auth: [("mcp".to_owned(), "bearer".to_owned())].into(),
        rules: scopes
            .iter()
            .map(|s| (s.clone(), vec![rule.clone()]))
            .collect(),
        says: BTreeMap::new(),
        narrow: None,
    };
    crate::config::proxy::validate(f).map(Some)
}

/// An HTTP client for discovery: no redirects, the server's extra CA.
pub fn client(ca_file: Option<&std::path::Path>) -> Result<reqwest::Client, McpError> {
    let mut b = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .user_agent(concat!("valetkey/", env!("CARGO_PKG_VERSION")));
    if let Some(ca) = ca_file {
        let bad = |e: String| McpError::Unsupported(format!("--ca-file {}: {e}", ca.display()));
        let pem = std::fs::read(ca).map_err(|e| bad(e.to_string()))?;
        for cert in reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| bad(e.to_string()))? {
            b = b.add_root_certificate(cert);
        }
    }
    b.build()
        .map_err(|e| McpError::Unsupported(format!("HTTP client: {e}")))
}

/// The stored servers, at start-up. One that no longer checks out, or
/// whose name a configured provider now has, is left out with a warning.
pub fn load(store: &Store, config: &Config) -> Servers {
    let servers = Servers::default();
    let rows = match store.mcp_servers() {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "cannot read the MCP servers; none are served");
            return servers;
        }
    };
    for row in rows {
        let name = row.server.name.clone();
        if config.providers.contains_key(&name) {
            tracing::warn!(%name, "an MCP server has the name of a configured provider; the configured provider wins. `valetkey mcp remove` it and add it under another name");
            continue;
        }
        match provider_of(&row.server) {
            Ok(p) => servers.put(Arc::new(p), row.added_at),
            Err(e) => {
                tracing::warn!(%name, error = %e, "a stored MCP server does not check out; skipped")
            }
        }
    }
    servers
}

/// The added MCP servers, as providers, with when each was added.
#[derive(Default)]
pub struct Servers {
    map: RwLock<BTreeMap<String, (Arc<Provider>, i64)>>,
    /// One step-up login at a time per server.
    logins: std::sync::Mutex<BTreeMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl Servers {
    /// A server's provider.
    pub fn get(&self, name: &str) -> Option<Arc<Provider>> {
        let m = self.map.read().unwrap_or_else(|e| e.into_inner());
        m.get(name).map(|(p, _)| p.clone())
    }

    /// Every server, by name, with when it was added.
    pub fn all(&self) -> Vec<(Arc<Provider>, i64)> {
        let m = self.map.read().unwrap_or_else(|e| e.into_inner());
        m.values().cloned().collect()
    }

    /// Adds or replaces one.
    pub fn put(&self, p: Arc<Provider>, added_at: i64) {
        let mut m = self.map.write().unwrap_or_else(|e| e.into_inner());
        m.insert(p.name.clone(), (p, added_at));
    }

    /// When `name` was added.
    pub fn added_at(&self, name: &str) -> Option<i64> {
        let m = self.map.read().unwrap_or_else(|e| e.into_inner());
        m.get(name).map(|(_, at)| *at)
    }

    /// The lock a step-up login of `name` holds.
    pub fn login_lock(&self, name: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut m = self.logins.lock().unwrap_or_else(|e| e.into_inner());
        m.entry(name.to_owned()).or_default().clone()
    }

    /// Forgets one.
    pub fn remove(&self, name: &str) {
        let mut m = self.map.write().unwrap_or_else(|e| e.into_inner());
        m.remove(name);
    }
}

#[cfg(test)]
mod tests;
