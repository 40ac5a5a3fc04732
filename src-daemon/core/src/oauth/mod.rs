//! Talking to identity providers: discovery, refresh, code exchange and
//! revocation, on top of the `oauth2` crate.
//!
//! [`Upstream`] keeps one HTTP client per provider (with the provider's
//! extra CA, no redirects, and its timeout) and the discovered endpoints.
//! Every failure is classified into [`UpstreamError`], whose variants map
//! one-to-one onto the wire error codes agents see.

pub mod device;
mod discovery;
mod http;
pub mod login;
mod ops;

use std::collections::HashMap;
use std::sync::Mutex;

pub use http::{clock_skew, HttpError};
pub use ops::TokenSet;

use crate::config::{Endpoints, Provider};

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

/// Provider clients and discovered endpoints, shared by the daemon.
#[derive(Default)]
pub struct Upstream {
    clients: Mutex<HashMap<String, reqwest::Client>>,
    endpoints: Mutex<HashMap<String, Endpoints>>,
}

impl Upstream {
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
