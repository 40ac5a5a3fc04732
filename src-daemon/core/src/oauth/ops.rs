//! The three token-endpoint operations the broker needs: refresh (with
//! down-scoping), authorization-code exchange (login), and revocation.

use std::time::Duration;

use oauth2::basic::{BasicClient, BasicErrorResponseType, BasicTokenType};
use oauth2::{
    AuthorizationCode, ClientId, ClientSecret, ErrorResponse, PkceCodeVerifier, RedirectUrl,
    RefreshToken, RequestTokenError, RevocationUrl, Scope, StandardRevocableToken, TokenResponse,
    TokenUrl,
};
use url::Url;

use super::http::{HttpError, Transport};
use super::{HttpUpstream, UpstreamError};
use crate::config::Provider;
use crate::secret::Secret;

/// What a token endpoint returned, with secrets wrapped.
#[derive(Debug)]
pub struct TokenSet {
    /// The access token.
    pub access_token: Secret,
    /// `Bearer` and so on.
    pub token_type: String,
    /// Lifetime, if the provider said.
    pub expires_in: Option<Duration>,
    /// Scopes, if the provider said (absent means "as requested").
    pub scopes: Option<Vec<String>>,
    /// A new refresh token, when the provider rotated it or on login.
    pub refresh_token: Option<Secret>,
}

const ATTEMPTS: u32 = 3;

pub(super) fn token_set<R>(r: &R) -> TokenSet
where
    R: TokenResponse<TokenType = BasicTokenType>,
{
    TokenSet {
        access_token: Secret::new(r.access_token().secret().clone()),
        token_type: match r.token_type() {
            BasicTokenType::Bearer => "Bearer".into(),
            BasicTokenType::Mac => "MAC".into(),
            BasicTokenType::Extension(s) => s.clone(),
        },
        expires_in: r.expires_in(),
        // An empty `scope` (GitHub Apps send `"scope": ""`) says nothing.
        scopes: r
            .scopes()
            .map(|s| {
                s.iter()
                    .map(|x| x.as_str().to_owned())
                    .filter(|x| !x.is_empty())
                    .collect::<Vec<_>>()
            })
            .filter(|v| !v.is_empty()),
        refresh_token: r.refresh_token().map(|t| Secret::new(t.secret().clone())),
    }
}

fn map_err<E: ErrorResponse>(
    p: &Provider,
    e: RequestTokenError<HttpError, E>,
    describe: impl Fn(&E) -> (String, Option<String>),
) -> UpstreamError {
    let provider = p.name.clone();
    match e {
        RequestTokenError::ServerResponse(r) => {
            let (error, detail) = describe(&r);
            if error == "invalid_grant" {
                UpstreamError::InvalidGrant {
                    provider,
                    detail: detail.unwrap_or(error),
                }
            } else {
                UpstreamError::Rejected {
                    provider,
                    error,
                    detail,
                }
            }
        }
        RequestTokenError::Request(h) => UpstreamError::Unavailable {
            provider,
            detail: h.to_string(),
        },
        // Never include the body: it may hold a token.
        RequestTokenError::Parse(err, _body) => UpstreamError::Rejected {
            provider,
            error: "invalid_response".into(),
            detail: Some(format!("unreadable token response: {}", err.inner())),
        },
        RequestTokenError::Other(s) => UpstreamError::Rejected {
            provider,
            error: "invalid_response".into(),
            detail: Some(s),
        },
    }
}

fn describe_basic(r: &oauth2::basic::BasicErrorResponse) -> (String, Option<String>) {
    let code = match r.error() {
        BasicErrorResponseType::Extension(s) => s.clone(),
        other => other.as_ref().to_owned(),
    };
    (code, r.error_description().cloned())
}

impl HttpUpstream {
    fn token_url(&self, p: &Provider, url: Option<Url>) -> Result<TokenUrl, UpstreamError> {
        url.map(TokenUrl::from_url)
            .ok_or_else(|| UpstreamError::Config {
                provider: p.name.clone(),
                detail: "no token endpoint (set token_endpoint or issuer)".into(),
            })
    }

    /// Refreshes with exactly `scopes` (and `resource`), retrying only what
    /// cannot consume the refresh token twice (see [`HttpError::retryable`]).
    pub async fn refresh(
        &self,
        p: &Provider,
        refresh_token: &Secret,
        client_secret: Option<&Secret>,
        scopes: &[String],
        resource: Option<&str>,
    ) -> Result<TokenSet, UpstreamError> {
        let endpoints = self.endpoints(p).await?;
        let token_url = self.token_url(p, endpoints.token)?;
        let http = self.client(p)?;
        let mut client =
            BasicClient::new(ClientId::new(p.client_id.clone())).set_token_uri(token_url);
        if let Some(s) = client_secret {
            client = client.set_client_secret(ClientSecret::new(s.expose().to_owned()));
        }
        let rt = RefreshToken::new(refresh_token.expose().to_owned());
        let send_fn = Transport {
            client: http,
            timeout: p.timeout,
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut req = client
                .exchange_refresh_token(&rt)
                .add_scopes(scopes.iter().map(|s| Scope::new(s.clone())));
            if let Some(r) = resource {
                req = req.add_extra_param("resource", r.to_owned());
            }
            match req.request_async(&send_fn).await {
                Ok(r) => return Ok(token_set(&r)),
                Err(RequestTokenError::Request(h)) if h.retryable() && attempt < ATTEMPTS => {
                    let backoff = Duration::from_millis(200 * 3u64.pow(attempt - 1));
                    tracing::warn!(provider = %p.name, error = %h, ?backoff, "token endpoint failed; retrying");
                    tokio::time::sleep(backoff).await;
                }
                Err(e) => return Err(map_err(p, e, describe_basic)),
            }
        }
    }

    /// Exchanges an authorization code (login). Never retried: codes are single-use.
    pub async fn exchange_code(
        &self,
        p: &Provider,
        client_secret: Option<&Secret>,
        code: String,
        verifier: PkceCodeVerifier,
        redirect: RedirectUrl,
    ) -> Result<TokenSet, UpstreamError> {
        let endpoints = self.endpoints(p).await?;
        let token_url = self.token_url(p, endpoints.token)?;
        let http = self.client(p)?;
        let mut client = BasicClient::new(ClientId::new(p.client_id.clone()))
            .set_token_uri(token_url)
            .set_redirect_uri(redirect);
        if let Some(s) = client_secret {
            client = client.set_client_secret(ClientSecret::new(s.expose().to_owned()));
        }
        let send_fn = Transport {
            client: http,
            timeout: p.timeout,
        };
        let mut req = client
            .exchange_code(AuthorizationCode::new(code))
            .set_pkce_verifier(verifier);
        if let Some(r) = &p.resource {
            req = req.add_extra_param("resource", r.clone());
        }
        let r = req
            .request_async(&send_fn)
            .await
            .map_err(|e| map_err(p, e, describe_basic))?;
        Ok(token_set(&r))
    }

    /// Revokes a refresh token (RFC 7009). `Ok(false)` when the provider has
    /// no revocation endpoint.
    pub async fn revoke(
        &self,
        p: &Provider,
        refresh_token: &Secret,
        client_secret: Option<&Secret>,
    ) -> Result<bool, UpstreamError> {
        let token = StandardRevocableToken::RefreshToken(RefreshToken::new(
            refresh_token.expose().to_owned(),
        ));
        self.revoke_token(p, token, client_secret).await
    }

    /// Revokes one access token (RFC 7009, `token_type_hint=access_token`).
    pub async fn revoke_access_token(
        &self,
        p: &Provider,
        access_token: &Secret,
        client_secret: Option<&Secret>,
    ) -> Result<bool, UpstreamError> {
        let token = StandardRevocableToken::AccessToken(oauth2::AccessToken::new(
            access_token.expose().to_owned(),
        ));
        self.revoke_token(p, token, client_secret).await
    }

    async fn revoke_token(
        &self,
        p: &Provider,
        token: StandardRevocableToken,
        client_secret: Option<&Secret>,
    ) -> Result<bool, UpstreamError> {
        let endpoints = self.endpoints(p).await?;
        let Some(url) = endpoints.revocation else {
            return Ok(false);
        };
        let http = self.client(p)?;
        let mut client = BasicClient::new(ClientId::new(p.client_id.clone()))
            .set_revocation_url(RevocationUrl::from_url(url));
        if let Some(s) = client_secret {
            client = client.set_client_secret(ClientSecret::new(s.expose().to_owned()));
        }
        let send_fn = Transport {
            client: http,
            timeout: p.timeout,
        };
        let req = client
            .revoke_token(token)
            .map_err(|e| UpstreamError::Config {
                provider: p.name.clone(),
                detail: e.to_string(),
            })?;
        req.request_async(&send_fn).await.map_err(|e| {
            map_err(p, e, |r: &oauth2::basic::BasicRevocationErrorResponse| {
                (
                    r.error().as_ref().to_owned(),
                    r.error_description().cloned(),
                )
            })
        })?;
        Ok(true)
    }
}
