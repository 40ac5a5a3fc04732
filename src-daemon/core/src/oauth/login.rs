//! `valetkey login`: authorization code + PKCE with a loopback redirect on
//! 127.0.0.1 and an ephemeral port (RFC 8252 §7.3).
//!
//! The browser is `$BROWSER` (the usual convention: a command, `%s` is
//! replaced by the URL, or the URL is appended) or `xdg-open`; the URL is
//! always printed too, so a headless user can paste it anywhere.

use std::time::Duration;

use oauth2::basic::BasicClient;
use oauth2::{AuthUrl, ClientId, CsrfToken, PkceCodeChallenge, RedirectUrl, Scope};
use tokio::net::TcpListener;

use super::{HttpUpstream, TokenSet, UpstreamError};
use crate::config::Provider;
use crate::secret::Secret;

/// Why a login failed.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// The provider failed.
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    /// Nobody completed the login in time.
    #[error("no login completed within {0:?}; run the command again")]
    Timeout(Duration),
    /// The user or provider refused.
    #[error("the provider refused the login: {error}{}", description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Denied {
        /// OAuth error code.
        error: String,
        /// Description.
        description: Option<String>,
    },
    /// Local socket failure.
    #[error("loopback listener failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Options for [`login_loopback`].
#[derive(Debug, Clone)]
pub struct LoginOptions {
    /// Try to open a browser (else only print the URL).
    pub open_browser: bool,
    /// Passed as `login_hint`.
    pub login_hint: Option<String>,
    /// How long to wait for the redirect.
    pub timeout: Duration,
}

/// Runs the whole browser login and returns the provider's tokens.
pub async fn login_loopback(
    up: &HttpUpstream,
    p: &Provider,
    client_secret: Option<&Secret>,
    opts: &LoginOptions,
) -> Result<TokenSet, LoginError> {
    let endpoints = up.endpoints(p).await?;
    let auth = endpoints
        .authorization
        .ok_or_else(|| UpstreamError::Config {
            provider: p.name.clone(),
            detail: "no authorization endpoint (set authorization_endpoint or issuer)".into(),
        })?;
    let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    let port = listener.local_addr()?.port();
    let redirect = RedirectUrl::new(format!("http://127.0.0.1:{port}/callback")).map_err(|e| {
        UpstreamError::Config {
            provider: p.name.clone(),
            detail: e.to_string(),
        }
    })?;
    let client = BasicClient::new(ClientId::new(p.client_id.clone()))
        .set_auth_uri(AuthUrl::from_url(auth))
        .set_redirect_uri(redirect.clone());
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut req = client
        .authorize_url(CsrfToken::new_random)
        .add_scopes(p.login_scopes.iter().map(|s| Scope::new(s.clone())))
        .set_pkce_challenge(challenge);
    if let Some(r) = &p.resource {
        req = req.add_extra_param("resource", r.clone());
    }
    for (k, v) in &p.extra_auth_params {
        req = req.add_extra_param(k.clone(), v.clone());
    }
    if let Some(h) = &opts.login_hint {
        req = req.add_extra_param("login_hint", h.clone());
    }
    let (url, state) = req.url();
    eprintln!(
        "Log in to {} in your browser. If it does not open, visit:\n\n  {url}\n",
        p.display_name
    );
    if opts.open_browser {
        open_browser(url.as_str());
    }
    let code = tokio::time::timeout(opts.timeout, wait_for_code(listener, state.secret()))
        .await
        .map_err(|_| LoginError::Timeout(opts.timeout))??;
    Ok(up
        .exchange_code(p, client_secret, code, verifier, redirect)
        .await?)
}

/// Opens `url` in `$BROWSER` (or `xdg-open`).
pub fn open_browser(url: &str) {
    let spawn = |cmd: &str| -> bool {
        let mut parts: Vec<String> = cmd.split_whitespace().map(str::to_owned).collect();
        if parts.is_empty() {
            return false;
        }
        if parts.iter().any(|p| p.contains("%s")) {
            parts.iter_mut().for_each(|p| *p = p.replace("%s", url));
        } else {
            parts.push(url.to_owned());
        }
        std::process::Command::new(&parts[0])
            .args(&parts[1..])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .spawn()
            .is_ok()
    };
    let browsers = std::env::var("BROWSER").unwrap_or_default();
    if browsers.split(':').any(spawn) {
        return;
    }
    if !spawn("xdg-open") {
        eprintln!("(no browser could be opened; use the URL above)");
    }
}

/// Serves the loopback redirect until a request with our `state` arrives.
/// A request with another state (or none) is answered `400` and ignored:
/// any local process can reach the listener, and none may end the login.
async fn wait_for_code(listener: TcpListener, state: &str) -> Result<String, LoginError> {
    use super::loopback::{not_ours, param, reply, state_is, Requests};
    let mut requests = Requests::serve(listener);
    loop {
        let (sock, url) = requests.next().await?;
        if url.path() != "/callback" {
            reply(sock, "404 Not Found", "text/plain", "").await;
            continue;
        }
        if !state_is(&url, state) {
            tracing::warn!("a loopback redirect with a wrong state was ignored");
            not_ours(sock).await;
            continue;
        }
        let outcome = if let Some(error) = param(&url, "error") {
            Err(LoginError::Denied {
                error,
                description: param(&url, "error_description"),
            })
        } else if let Some(code) = param(&url, "code") {
            Ok(code)
        } else {
            Err(LoginError::Denied {
                error: "invalid_response".into(),
                description: Some("the redirect carried no code".into()),
            })
        };
        let body = match &outcome {
            Ok(_) => "Valet Key: login complete. You can close this tab.",
            Err(_) => "Valet Key: login failed. See the terminal for details.",
        };
        reply(sock, "200 OK", "text/plain", body).await;
        return outcome;
    }
}
