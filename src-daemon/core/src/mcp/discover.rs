//! Discovery, as the MCP authorization spec (revision 2025-11-25) orders
//! it: ask the server without a token and read its 401 challenge; fetch
//! the protected resource metadata (RFC 9728) from the challenge's
//! `resource_metadata`, else from the well-known paths; then fetch the
//! authorization server's metadata (RFC 8414 and OpenID Connect
//! Discovery, both, in the spec's order) and check it can serve a native
//! client with PKCE.

use serde::Deserialize;
use url::Url;

use super::challenge::{self, Challenge};
use super::McpError;

/// The MCP protocol revision announced in the probing `initialize`.
pub const PROTOCOL_REVISION: &str = "2025-11-25";

/// RFC 9728 protected resource metadata (the fields used).
#[derive(Debug, Clone, Deserialize)]
pub struct ResourceMetadata {
    /// The resource identifier: the tokens' audience.
    pub resource: String,
    /// Its authorization servers (issuers).
    #[serde(default)]
    pub authorization_servers: Vec<String>,
    /// Scopes it understands.
    #[serde(default)]
    pub scopes_supported: Vec<String>,
}

/// RFC 8414 / OIDC authorization server metadata (the fields used).
#[derive(Debug, Clone, Deserialize)]
pub struct ServerMetadata {
    /// Its issuer (must equal the URL it was found under).
    pub issuer: String,
    /// Authorization endpoint.
    pub authorization_endpoint: Option<Url>,
    /// Token endpoint.
    pub token_endpoint: Option<Url>,
    /// RFC 7591 registration endpoint.
    pub registration_endpoint: Option<Url>,
    /// RFC 7009 revocation endpoint.
    pub revocation_endpoint: Option<Url>,
    /// Scopes it knows.
    #[serde(default)]
    pub scopes_supported: Vec<String>,
    /// PKCE methods (must include `S256`).
    pub code_challenge_methods_supported: Option<Vec<String>>,
    /// Client ID metadata documents are accepted.
    #[serde(default)]
    pub client_id_metadata_document_supported: bool,
}

/// What discovery found.
#[derive(Debug, Clone)]
pub struct Discovered {
    /// The server's 401 challenge.
    pub challenge: Challenge,
    /// Where the resource metadata was found.
    pub resource_metadata_url: Url,
    /// The resource metadata.
    pub resource: ResourceMetadata,
    /// Where the authorization server's metadata was found.
    pub server_metadata_url: Url,
    /// The authorization server's metadata.
    pub server: ServerMetadata,
}

impl Discovered {
    /// The scopes to ask for at login: the challenge's, else every scope
    /// the resource metadata lists (MCP 2025-11-25, "Scope Selection
    /// Strategy").
    pub fn scopes(&self) -> Vec<String> {
        let from_challenge = self.challenge.scopes();
        if from_challenge.is_empty() {
            self.resource.scopes_supported.clone()
        } else {
            from_challenge
        }
    }
}

/// HTTPS, or plain HTTP to this machine's loopback (a local dev server).
pub fn secure(url: &Url) -> bool {
    match url.scheme() {
        "https" => true,
        "http" => {
            matches!(
                url.host(),
                Some(url::Host::Ipv4(a)) if a.is_loopback()
            ) || matches!(url.host(), Some(url::Host::Ipv6(a)) if a.is_loopback())
                || url.host_str() == Some("localhost")
        }
        _ => false,
    }
}

/// `url` with `well_known` inserted between the host and the path (RFC
/// 8414 §3.1, RFC 9728 §3.1); `None` for a root path.
fn inserted(url: &Url, well_known: &str) -> Option<Url> {
    let path = url.path().trim_end_matches('/');
    if path.is_empty() {
        return None;
    }
    let mut u = url.clone();
    u.set_path(&format!("/.well-known/{well_known}{path}"));
    u.set_query(None);
    u.set_fragment(None);
    Some(u)
}

fn at_root(url: &Url, path: &str) -> Url {
    let mut u = url.clone();
    u.set_path(path);
    u.set_query(None);
    u.set_fragment(None);
    u
}

/// Where to look for the protected resource metadata when the challenge
/// names none: the path-aware well-known URI, then the root one.
pub fn resource_metadata_urls(server: &Url) -> Vec<Url> {
    let mut v: Vec<Url> = inserted(server, "oauth-protected-resource")
        .into_iter()
        .collect();
    v.push(at_root(server, "/.well-known/oauth-protected-resource"));
    v
}

/// Where to look for an authorization server's metadata, in the MCP
/// spec's order: with a path, RFC 8414 path-inserted, OIDC path-inserted,
/// then OIDC path-appended; without one, RFC 8414 then OIDC.
pub fn server_metadata_urls(issuer: &Url) -> Vec<Url> {
    let path = issuer.path().trim_end_matches('/');
    if path.is_empty() {
        return vec![
            at_root(issuer, "/.well-known/oauth-authorization-server"),
            at_root(issuer, "/.well-known/openid-configuration"),
        ];
    }
    let mut v: Vec<Url> = ["oauth-authorization-server", "openid-configuration"]
        .iter()
        .filter_map(|w| inserted(issuer, w))
        .collect();
    v.push(at_root(
        issuer,
        &format!("{path}/.well-known/openid-configuration"),
    ));
    v
}

/// Whether `resource` (from the metadata) may stand for the server at
/// `server`: the same origin, and a path that is the server's or one of
/// its parents (RFC 9728 §3.3; the MCP SDKs check the same).
pub fn resource_covers(resource: &Url, server: &Url) -> bool {
    if resource.origin() != server.origin() {
        return false;
    }
    let r = resource.path().trim_end_matches('/');
    let s = server.path().trim_end_matches('/');
    s == r || s.starts_with(&format!("{r}/"))
}

/// Asks the server with no token. `Ok(None)`: it answered without asking
/// for one, so there is nothing for Valet Key to keep.
pub async fn probe(client: &reqwest::Client, server: &Url) -> Result<Option<Challenge>, McpError> {
    let body = serde_json::json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {
            "protocolVersion": PROTOCOL_REVISION,
            "capabilities": {},
            "clientInfo": { "name": "valetkey", "version": env!("CARGO_PKG_VERSION") }
        }
    });
    let resp = client
        .post(server.clone())
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", PROTOCOL_REVISION)
        .json(&body)
        .send()
        .await
        .map_err(|e| McpError::http(server, e))?;
    let status = resp.status().as_u16();
    if (200..300).contains(&status) {
        return Ok(None);
    }
    if status != 401 {
        return Err(McpError::Http {
            url: server.to_string(),
            detail: format!("answered HTTP {status} to an initialize request without a token (an MCP server that needs authorization answers 401)"),
        });
    }
    let values = resp
        .headers()
        .get_all(reqwest::header::WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>();
    Ok(Some(challenge::bearer(values).unwrap_or_default()))
}

/// GETs a JSON document; `Ok(None)` on 404 (or 400/405: servers that do
/// not route the path).
async fn fetch<T: serde::de::DeserializeOwned>(
    client: &reqwest::Client,
    url: &Url,
) -> Result<Option<T>, McpError> {
    let resp = client
        .get(url.clone())
        .header("accept", "application/json")
        .send()
        .await
        .map_err(|e| McpError::http(url, e))?;
    let status = resp.status().as_u16();
    if matches!(status, 400 | 404 | 405) {
        return Ok(None);
    }
    if !resp.status().is_success() {
        return Err(McpError::Http {
            url: url.to_string(),
            detail: format!("answered HTTP {status}"),
        });
    }
    resp.json::<T>()
        .await
        .map(Some)
        .map_err(|e| McpError::Invalid {
            what: url.to_string(),
            detail: format!("not the expected JSON document: {}", e.without_url()),
        })
}

/// Tries `urls` in order; the first document found, and where.
async fn first<T: serde::de::DeserializeOwned>(
    client: &reqwest::Client,
    urls: Vec<Url>,
    what: &str,
) -> Result<(Url, T), McpError> {
    let tried = urls.iter().map(Url::as_str).collect::<Vec<_>>().join(", ");
    for url in &urls {
        if let Some(doc) = fetch(client, url).await? {
            return Ok((url.clone(), doc));
        }
    }
    Err(McpError::Invalid {
        what: what.into(),
        detail: format!("not found at {tried}"),
    })
}

/// The whole discovery for the MCP server at `server`.
pub async fn discover(client: &reqwest::Client, server: &Url) -> Result<Discovered, McpError> {
    let challenge = probe(client, server).await?.ok_or_else(|| McpError::Unsupported(format!(
        "{server} answered without asking for a token: it needs no authorization, so there is nothing for Valet Key to keep; configure your MCP client to use it directly"
    )))?;
    let urls = match challenge.param("resource_metadata") {
        Some(u) => vec![Url::parse(u).map_err(|e| McpError::Invalid {
            what: "the 401 challenge".into(),
            detail: format!("resource_metadata {u:?} is not a URL: {e}"),
        })?],
        None => resource_metadata_urls(server),
    };
    let (resource_metadata_url, resource): (Url, ResourceMetadata) =
        first(client, urls, "protected resource metadata (RFC 9728)").await?;
    check_resource(&resource, server)?;
    let (server_metadata_url, meta) = server_metadata(client, &resource).await?;
    Ok(Discovered {
        challenge,
        resource_metadata_url,
        resource,
        server_metadata_url,
        server: meta,
    })
}

fn check_resource(r: &ResourceMetadata, server: &Url) -> Result<(), McpError> {
    let invalid = |detail: String| McpError::Invalid {
        what: "the protected resource metadata".into(),
        detail,
    };
    let url = Url::parse(&r.resource)
        .map_err(|e| invalid(format!("resource {:?} is not a URL: {e}", r.resource)))?;
    if !resource_covers(&url, server) {
        return Err(invalid(format!(
            "it names resource {} which is not {server} or a parent of it; refusing (a token for it could be sent to the wrong server)",
            r.resource
        )));
    }
    if r.authorization_servers.is_empty() {
        return Err(invalid("it lists no authorization_servers".into()));
    }
    Ok(())
}

/// The first listed authorization server's metadata, checked.
async fn server_metadata(
    client: &reqwest::Client,
    r: &ResourceMetadata,
) -> Result<(Url, ServerMetadata), McpError> {
    let raw = &r.authorization_servers[0];
    let issuer = Url::parse(raw).map_err(|e| McpError::Invalid {
        what: "the protected resource metadata".into(),
        detail: format!("authorization server {raw:?} is not a URL: {e}"),
    })?;
    if !secure(&issuer) {
        return Err(McpError::Unsupported(format!(
            "the authorization server {issuer} is not HTTPS (plain HTTP is accepted on loopback only)"
        )));
    }
    let (url, meta): (Url, ServerMetadata) = first(
        client,
        server_metadata_urls(&issuer),
        "authorization server metadata (RFC 8414 or OpenID Connect Discovery)",
    )
    .await?;
    check_server(&meta, &issuer)?;
    Ok((url, meta))
}

fn check_server(m: &ServerMetadata, issuer: &Url) -> Result<(), McpError> {
    let invalid = |detail: String| McpError::Invalid {
        what: format!("the metadata of {issuer}"),
        detail,
    };
    if m.issuer.trim_end_matches('/') != issuer.as_str().trim_end_matches('/') {
        return Err(invalid(format!(
            "it names issuer {} (mix-up defence: it must be the URL it was found under)",
            m.issuer
        )));
    }
    let pkce = m.code_challenge_methods_supported.as_deref().unwrap_or(&[]);
    if !pkce.iter().any(|x| x == "S256") {
        return Err(McpError::Unsupported(format!(
            "{issuer} does not list S256 in code_challenge_methods_supported; MCP clients must not log in without PKCE"
        )));
    }
    for (field, u) in [
        ("authorization_endpoint", &m.authorization_endpoint),
        ("token_endpoint", &m.token_endpoint),
    ] {
        match u {
            None => return Err(invalid(format!("it has no {field}"))),
            Some(u) if !secure(u) => return Err(invalid(format!("its {field} {u} is not HTTPS"))),
            Some(_) => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> Url {
        Url::parse(s).expect("url")
    }

    fn strs(v: Vec<Url>) -> Vec<String> {
        v.into_iter().map(String::from).collect()
    }

    #[test]
    fn resource_metadata_is_looked_for_path_first() {
        assert_eq!(
            strs(resource_metadata_urls(&u("https://ex.com/public/mcp?x=1"))),
            [
                "https://ex.com/.well-known/oauth-protected-resource/public/mcp",
                "https://ex.com/.well-known/oauth-protected-resource"
            ]
        );
        assert_eq!(
            strs(resource_metadata_urls(&u("https://ex.com/"))),
            ["https://ex.com/.well-known/oauth-protected-resource"]
        );
    }

    #[test]
    fn server_metadata_follows_the_spec_order() {
        assert_eq!(
            strs(server_metadata_urls(&u("https://auth.ex.com/tenant1"))),
            [
                "https://auth.ex.com/.well-known/oauth-authorization-server/tenant1",
                "https://auth.ex.com/.well-known/openid-configuration/tenant1",
                "https://auth.ex.com/tenant1/.well-known/openid-configuration"
            ]
        );
        assert_eq!(
            strs(server_metadata_urls(&u("https://auth.ex.com"))),
            [
                "https://auth.ex.com/.well-known/oauth-authorization-server",
                "https://auth.ex.com/.well-known/openid-configuration"
            ]
        );
    }

    #[test]
    fn a_resource_covers_its_own_path_and_below_only() {
        let s = u("https://ex.com/mcp");
        assert!(resource_covers(&u("https://ex.com/mcp"), &s));
        assert!(resource_covers(&u("https://ex.com/"), &s));
        assert!(!resource_covers(&u("https://ex.com/mc"), &s));
        assert!(!resource_covers(&u("https://ex.com/mcp/x"), &s));
        assert!(!resource_covers(&u("https://other.com/mcp"), &s));
        assert!(!resource_covers(&u("http://ex.com/mcp"), &s));
    }

    #[test]
    fn plain_http_only_on_loopback() {
        assert!(secure(&u("https://ex.com")));
        assert!(secure(&u("http://127.0.0.1:8/x")));
        assert!(secure(&u("http://[::1]:8/x")));
        assert!(secure(&u("http://localhost:8/x")));
        assert!(!secure(&u("http://ex.com")));
        assert!(!secure(&u("ftp://127.0.0.1")));
    }

    #[test]
    fn the_server_must_name_itself_and_offer_s256() {
        let meta = |issuer: &str, pkce: Option<Vec<&str>>| ServerMetadata {
            issuer: issuer.into(),
            authorization_endpoint: Some(u("https://a.ex/authorize")),
            token_endpoint: Some(u("https://a.ex/token")),
            registration_endpoint: None,
            revocation_endpoint: None,
            scopes_supported: vec![],
            code_challenge_methods_supported: pkce
                .map(|v| v.into_iter().map(String::from).collect()),
            client_id_metadata_document_supported: false,
        };
        let iss = u("https://a.ex/");
        assert!(check_server(&meta("https://a.ex", Some(vec!["S256"])), &iss).is_ok());
        let e =
            check_server(&meta("https://evil.ex", Some(vec!["S256"])), &iss).expect_err("refused");
        assert!(e.to_string().contains("mix-up"), "{e}");
        let e = check_server(&meta("https://a.ex", None), &iss).expect_err("refused");
        assert!(e.to_string().contains("S256"), "{e}");
        let e =
            check_server(&meta("https://a.ex", Some(vec!["plain"])), &iss).expect_err("refused");
        assert!(e.to_string().contains("PKCE"), "{e}");
    }

    #[test]
    fn scopes_come_from_the_challenge_first() {
        let mut d = Discovered {
            challenge: challenge::bearer([r#"Bearer scope="a b""#]).expect("c"),
            resource_metadata_url: u("https://ex.com/.well-known/oauth-protected-resource"),
            resource: ResourceMetadata {
                resource: "https://ex.com/".into(),
                authorization_servers: vec!["https://a.ex".into()],
                scopes_supported: vec!["x".into()],
            },
            server_metadata_url: u("https://a.ex/.well-known/oauth-authorization-server"),
            server: ServerMetadata {
                issuer: "https://a.ex".into(),
                authorization_endpoint: None,
                token_endpoint: None,
                registration_endpoint: None,
                revocation_endpoint: None,
                scopes_supported: vec![],
                code_challenge_methods_supported: None,
                client_id_metadata_document_supported: false,
            },
        };
        assert_eq!(d.scopes(), ["a", "b"]);
        d.challenge = Challenge::default();
        assert_eq!(d.scopes(), ["x"]);
    }
}
