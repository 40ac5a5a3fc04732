//! `valetkey login --device`: the OAuth 2.0 Device Authorization Grant
//! (RFC 8628), for machines where no browser can reach a loopback port
//! (SSH sessions, containers, headless boxes).
//!
//! The CLI prints the verification URI and the user code; the user
//! approves on any other device, and we poll the token endpoint at the
//! interval the provider asks for (backing off on `slow_down`, as the
//! `oauth2` crate implements). The device code never leaves this process.

use std::time::Duration;

use oauth2::basic::BasicClient;
use oauth2::{
    ClientId, ClientSecret, DeviceAuthorizationUrl, DeviceCodeErrorResponseType, RequestTokenError,
    Scope, StandardDeviceAuthorizationResponse, TokenUrl,
};

use super::http::Transport;
use super::login::LoginError;
use super::{HttpUpstream, TokenSet, UpstreamError};
use crate::config::Provider;
use crate::secret::Secret;

/// What the user must do, shown before polling starts.
#[derive(Debug, Clone)]
pub struct DevicePrompt {
    /// Where to go.
    pub verification_uri: String,
    /// The URI with the code filled in, when the provider offers one.
    pub verification_uri_complete: Option<String>,
    /// The code to type (short-lived, single-use, safe to show).
    pub user_code: String,
    /// How long the code stays valid.
    pub expires_in: Duration,
}

fn config_err(p: &Provider, detail: impl Into<String>) -> UpstreamError {
    UpstreamError::Config {
        provider: p.name.clone(),
        detail: detail.into(),
    }
}

/// Runs the device flow. `show` is called once with what the user must do;
/// the call then polls until approval, denial, expiry or `timeout`.
pub async fn login_device(
    up: &HttpUpstream,
    p: &Provider,
    client_secret: Option<&Secret>,
    timeout: Duration,
    show: impl FnOnce(&DevicePrompt),
) -> Result<TokenSet, LoginError> {
    let endpoints = up.endpoints(p).await?;
    let device_url = endpoints.device_authorization.ok_or_else(|| {
        config_err(
            p,
            "the provider advertises no device_authorization_endpoint; use the browser login (without --device) or set device_authorization_endpoint",
        )
    })?;
    let token_url = endpoints
        .token
        .ok_or_else(|| config_err(p, "no token endpoint (set token_endpoint or issuer)"))?;
    let mut client = BasicClient::new(ClientId::new(p.client_id.clone()))
        .set_device_authorization_url(DeviceAuthorizationUrl::from_url(device_url))
        .set_token_uri(TokenUrl::from_url(token_url));
    if let Some(s) = client_secret {
        client = client.set_client_secret(ClientSecret::new(s.expose().to_owned()));
    }
    let http = Transport {
        client: up.client(p)?,
        timeout: p.timeout,
    };
    let mut req = client
        .exchange_device_code()
        .add_scopes(p.login_scopes.iter().map(|s| Scope::new(s.clone())));
    if let Some(r) = &p.resource {
        req = req.add_extra_param("resource", r.clone());
    }
    let details: StandardDeviceAuthorizationResponse =
        req.request_async(&http).await.map_err(|e| {
            LoginError::Upstream(match e {
                RequestTokenError::ServerResponse(r) => UpstreamError::Rejected {
                    provider: p.name.clone(),
                    error: r.error().as_ref().to_owned(),
                    detail: r.error_description().cloned(),
                },
                RequestTokenError::Request(h) => UpstreamError::Unavailable {
                    provider: p.name.clone(),
                    detail: h.to_string(),
                },
                other => UpstreamError::Rejected {
                    provider: p.name.clone(),
                    error: "invalid_response".into(),
                    detail: Some(format!("unreadable device authorization response: {other}")),
                },
            })
        })?;
    show(&DevicePrompt {
        verification_uri: details.verification_uri().to_string(),
        verification_uri_complete: details
            .verification_uri_complete()
            .map(|u| u.secret().clone()),
        user_code: details.user_code().secret().clone(),
        expires_in: details.expires_in(),
    });
    let token = client
        .exchange_device_access_token(&details)
        .request_async(&http, tokio::time::sleep, Some(timeout))
        .await
        .map_err(|e| match e {
            RequestTokenError::ServerResponse(r) => match r.error() {
                DeviceCodeErrorResponseType::AccessDenied => LoginError::Denied {
                    error: "access_denied".into(),
                    description: r.error_description().cloned(),
                },
                DeviceCodeErrorResponseType::ExpiredToken => LoginError::Timeout(timeout),
                other => LoginError::Upstream(UpstreamError::Rejected {
                    provider: p.name.clone(),
                    error: other.as_ref().to_owned(),
                    detail: r.error_description().cloned(),
                }),
            },
            RequestTokenError::Request(h) => LoginError::Upstream(UpstreamError::Unavailable {
                provider: p.name.clone(),
                detail: h.to_string(),
            }),
            // Never include the body: it may hold a token.
            other => LoginError::Upstream(UpstreamError::Rejected {
                provider: p.name.clone(),
                error: "invalid_response".into(),
                detail: Some(format!("unreadable token response: {other}")),
            }),
        })?;
    Ok(super::ops::token_set(&token))
}
