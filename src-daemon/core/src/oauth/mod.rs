//! Talking to identity providers: discovery, refresh, code exchange and
//! revocation, on top of the `oauth2` crate.
//!
//! [`HttpUpstream`] keeps one HTTP client per provider (with the provider's
//! extra CA, no redirects, and its timeout) and the discovered endpoints.
//! Every failure is classified into [`UpstreamError`], whose variants map
//! one-to-one onto the wire error codes agents see.

pub mod device;
mod discovery;
pub mod github;
mod http;
pub mod login;
pub mod loopback;
mod ops;

use std::collections::HashMap;
use std::sync::Mutex;

pub use http::{clock_skew, HttpError};
pub use ops::TokenSet;

use crate::config::{Endpoints, Provider};
use crate::keychain::BoxFuture;
use crate::secret::Secret;

/// Why a provider call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum UpstreamError {
    /// `invalid_grant`: the refresh token is dead; a new login is needed.
    #[error("{provider} rejected the stored login ({detail}); run `valetkey login {provider}`")]
    InvalidGrant {
        /// Provider name.
        provider: String,
        /// The provider's error description.
        detail: String,
    },
    /// The provider refused the request for another OAuth reason.
    #[error("{provider} refused the request: {error}{}", detail.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Rejected {
        /// Provider name.
        provider: String,
        /// The OAuth error code.
        error: String,
        /// Its description.
        detail: Option<String>,
    },
    /// Down, slow, or failing with 5xx.
    #[error("{provider} is unavailable: {detail}; retry later")]
    Unavailable {
        /// Provider name.
        provider: String,
        /// What happened.
        detail: String,
    },
    /// The provider config cannot work (missing endpoint, bad CA file).
    #[error("provider {provider} is misconfigured: {detail}")]
    Config {
        /// Provider name.
        provider: String,
        /// What to fix.
        detail: String,
    },
}

/// The provider calls the broker makes once a login exists, as the core
/// sees them: the daemon passes the real [`HttpUpstream`]; the in-process
/// tests pass a fake that counts calls and fails on demand.
pub trait Upstream: Send + Sync {
    /// Refresh-token grant, narrowed to `scopes` (and `resource`).
    fn refresh<'a>(
        &'a self,
        p: &'a Provider,
        refresh_token: &'a Secret,
        client_secret: Option<&'a Secret>,
        scopes: &'a [String],
        resource: Option<&'a str>,
    ) -> BoxFuture<'a, Result<TokenSet, UpstreamError>>;
    /// RFC 7009 revocation of a refresh token; `Ok(false)` when the
    /// provider has no revocation endpoint.
    fn revoke<'a>(
        &'a self,
        p: &'a Provider,
        refresh_token: &'a Secret,
        client_secret: Option<&'a Secret>,
    ) -> BoxFuture<'a, Result<bool, UpstreamError>>;
    /// RFC 7009 revocation of an access token.
    fn revoke_access_token<'a>(
        &'a self,
        p: &'a Provider,
        access_token: &'a Secret,
        client_secret: Option<&'a Secret>,
    ) -> BoxFuture<'a, Result<bool, UpstreamError>>;
    /// GitHub's `token/scoped` at `url`: `token` narrowed as `body` says
    /// (see [`github::scoped_body`]).
    fn scoped_token<'a>(
        &'a self,
        p: &'a Provider,
        client_secret: &'a Secret,
        url: &'a str,
        token: &'a Secret,
        body: &'a serde_json::Value,
    ) -> BoxFuture<'a, Result<Secret, UpstreamError>>;
}

impl Upstream for HttpUpstream {
    fn refresh<'a>(
        &'a self,
        p: &'a Provider,
        refresh_token: &'a Secret,
        client_secret: Option<&'a Secret>,
        scopes: &'a [String],
        resource: Option<&'a str>,
    ) -> BoxFuture<'a, Result<TokenSet, UpstreamError>> {
        Box::pin(HttpUpstream::refresh(
            self,
            p,
            refresh_token,
            client_secret,
            scopes,
            resource,
        ))
    }
    fn revoke<'a>(
        &'a self,
        p: &'a Provider,
        refresh_token: &'a Secret,
        client_secret: Option<&'a Secret>,
    ) -> BoxFuture<'a, Result<bool, UpstreamError>> {
        Box::pin(HttpUpstream::revoke(self, p, refresh_token, client_secret))
    }
    fn revoke_access_token<'a>(
        &'a self,
        p: &'a Provider,
        access_token: &'a Secret,
        client_secret: Option<&'a Secret>,
    ) -> BoxFuture<'a, Result<bool, UpstreamError>> {
        Box::pin(HttpUpstream::revoke_access_token(
            self,
            p,
            access_token,
            client_secret,
        ))
    }
    fn scoped_token<'a>(
        &'a self,
        p: &'a Provider,
        client_secret: &'a Secret,
        url: &'a str,
        token: &'a Secret,
        body: &'a serde_json::Value,
    ) -> BoxFuture<'a, Result<Secret, UpstreamError>> {
        Box::pin(async move {
            let client = self.client(p)?;
            github::scoped_token(&client, p, client_secret, url, token, body).await
        })
    }
}

/// Provider clients and discovered endpoints: the real [`Upstream`].
#[derive(Default)]
pub struct HttpUpstream {
    clients: Mutex<HashMap<String, reqwest::Client>>,
    endpoints: Mutex<HashMap<String, Endpoints>>,
}

impl HttpUpstream {
    /// A fresh cache.
    pub fn new() -> Self {
        Self::default()
    }

    pub(super) fn client(&self, p: &Provider) -> Result<reqwest::Client, UpstreamError> {
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = clients.get(&p.name) {
            return Ok(c.clone());
        }
        let c = http::build_client(p)?;
        clients.insert(p.name.clone(), c.clone());
        Ok(c)
    }
}
