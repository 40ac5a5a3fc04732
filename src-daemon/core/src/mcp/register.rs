//! Getting a client id at an MCP server's authorization server, in the
//! order the MCP spec (2025-11-25) prefers: credentials the user
//! registered by hand; a client ID metadata document (the client id is an
//! HTTPS URL the authorization server fetches), when the server accepts
//! them and the user publishes one; dynamic client registration (RFC
//! 7591) as the fallback.

use url::Url;
use valetkey_ipc::control::Registration;

use super::discover::ServerMetadata;
use super::McpError;
use crate::secret::Secret;

/// The redirect URI Valet Key registers: loopback, any port (RFC 8252
/// §7.3); each login listens on a fresh port of 127.0.0.1.
pub const REDIRECT_URI: &str = "http://127.0.0.1/callback";

/// What the user supplied.
#[derive(Default)]
pub struct Choice {
    /// A client id registered by hand.
    pub client_id: Option<String>,
    /// Its secret, for a confidential client.
    pub client_secret: Option<Secret>,
    /// Where the user publishes Valet Key's client ID metadata document.
    pub metadata_url: Option<Url>,
}

/// The client Valet Key will log in as.
pub struct Registered {
    /// The client id.
    pub client_id: String,
    /// How it was had.
    pub registration: Registration,
    /// A secret, when the authorization server issued one (or the user
    /// gave one): it goes to the keychain, never into the database.
    pub client_secret: Option<Secret>,
}

/// What Valet Key says of itself as a client: a native public client
/// with a loopback redirect (the body of a dynamic registration, and of a
/// metadata document).
fn client_metadata() -> serde_json::Value {
    serde_json::json!({
        "client_name": "Valet Key",
        "redirect_uris": [REDIRECT_URI],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
        "application_type": "native",
    })
}

/// The client ID metadata document to publish at `url` (the client id is
/// the URL itself).
pub fn metadata_document(url: &Url) -> serde_json::Value {
    let mut doc = client_metadata();
    doc["client_id"] = url.as_str().into();
    doc
}

/// A metadata document URL must be HTTPS with a path (the spec's rule).
pub fn check_metadata_url(url: &Url) -> Result<(), McpError> {
    if url.scheme() != "https" || url.path().trim_matches('/').is_empty() {
        return Err(McpError::Unsupported(format!(
            "a client ID metadata document URL must be https:// with a path, got {url}"
        )));
    }
    Ok(())
}

/// Picks (and, for dynamic registration, performs) the registration.
pub async fn register(
    client: &reqwest::Client,
    meta: &ServerMetadata,
    choice: Choice,
    scopes: &[String],
) -> Result<Registered, McpError> {
    if let Some(client_id) = choice.client_id {
        return Ok(Registered {
            client_id,
            registration: Registration::Preregistered,
            client_secret: choice.client_secret,
        });
    }
    if let (true, Some(url)) = (
        meta.client_id_metadata_document_supported,
        &choice.metadata_url,
    ) {
        check_metadata_url(url)?;
        return Ok(Registered {
            client_id: url.to_string(),
            registration: Registration::MetadataDocument,
            client_secret: None,
        });
    }
    match &meta.registration_endpoint {
        Some(endpoint) => dynamic(client, endpoint, scopes).await,
        None => Err(McpError::Unsupported(format!(
            "{} offers no way for Valet Key to register: no registration_endpoint{}. Register a client there by hand (redirect URI {REDIRECT_URI}) and pass --client-id",
            meta.issuer,
            if meta.client_id_metadata_document_supported {
                ", and no --client-metadata-url was given"
            } else {
                ""
            }
        ))),
    }
}

#[derive(serde::Deserialize)]
struct DcrResponse {
    client_id: String,
    client_secret: Option<String>,
}

/// RFC 7591 registration as a native public client.
async fn dynamic(
    client: &reqwest::Client,
    endpoint: &Url,
    scopes: &[String],
) -> Result<Registered, McpError> {
    let mut body = client_metadata();
    if !scopes.is_empty() {
        body["scope"] = scopes.join(" ").into();
    }
    let resp = client
        .post(endpoint.clone())
        .json(&body)
        .send()
        .await
        .map_err(|e| McpError::http(endpoint, e))?;
    let status = resp.status().as_u16();
    if !resp.status().is_success() {
        let text = resp.text().await.unwrap_or_default();
        return Err(McpError::Http {
            url: endpoint.to_string(),
            detail: format!(
                "dynamic client registration answered HTTP {status}: {}; register a client there by hand (redirect URI {REDIRECT_URI}) and pass --client-id",
                super::excerpt(&text)
            ),
        });
    }
    let r: DcrResponse = resp.json().await.map_err(|e| McpError::Invalid {
        what: "the dynamic client registration response".into(),
        detail: e.without_url().to_string(),
    })?;
    Ok(Registered {
        client_id: r.client_id,
        registration: Registration::Dynamic,
        client_secret: r.client_secret.filter(|s| !s.is_empty()).map(Secret::new),
    })
}
