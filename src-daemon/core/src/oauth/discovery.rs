//! Endpoint discovery: OpenID Connect Discovery, then RFC 8414.
//!
//! Explicit endpoints in the config always win. The discovered document's
//! `issuer` must equal the configured issuer (mix-up defence); results are
//! cached for the daemon's life, failures are not.

use serde::Deserialize;
use url::Url;

use super::{HttpUpstream, UpstreamError};
use crate::config::{Endpoints, Provider};

#[derive(Deserialize)]
struct Metadata {
    issuer: String,
    authorization_endpoint: Option<Url>,
    token_endpoint: Option<Url>,
    revocation_endpoint: Option<Url>,
    device_authorization_endpoint: Option<Url>,
}

fn well_known(issuer: &Url) -> Vec<Url> {
    let base = issuer.as_str().trim_end_matches('/');
    let mut urls = Vec::new();
    if let Ok(u) = Url::parse(&format!("{base}/.well-known/openid-configuration")) {
        urls.push(u);
    }
    let mut rfc8414 = issuer.clone();
    let path = issuer.path().trim_end_matches('/').to_owned();
    rfc8414.set_path(&format!("/.well-known/oauth-authorization-server{path}"));
    urls.push(rfc8414);
    urls
}

impl HttpUpstream {
    /// The provider's endpoints: config first, discovery for the rest.
    pub async fn endpoints(&self, p: &Provider) -> Result<Endpoints, UpstreamError> {
        let Some(issuer) = &p.issuer else {
            return Ok(p.endpoints.clone());
        };
        if let Some(e) = self
            .endpoints
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&p.name)
        {
            return Ok(e.clone());
        }
        let client = self.client(p)?;
        let mut last = String::from("no discovery document found");
        for url in well_known(issuer) {
            let resp = match client.get(url.clone()).send().await {
                Ok(r) => r,
                Err(e) => {
                    return Err(UpstreamError::Unavailable {
                        provider: p.name.clone(),
                        detail: format!("discovery at {url}: {}", e.without_url()),
                    })
                }
            };
            if !resp.status().is_success() {
                last = format!("{url} answered HTTP {}", resp.status());
                continue;
            }
            let meta: Metadata = resp.json().await.map_err(|e| UpstreamError::Config {
                provider: p.name.clone(),
                detail: format!("discovery document at {url} is invalid: {e}"),
            })?;
            if meta.issuer.trim_end_matches('/') != issuer.as_str().trim_end_matches('/') {
                return Err(UpstreamError::Config {
                    provider: p.name.clone(),
                    detail: format!(
                        "discovery document names issuer {} but the config says {issuer}",
                        meta.issuer
                    ),
                });
            }
            let e = Endpoints {
                authorization: p
                    .endpoints
                    .authorization
                    .clone()
                    .or(meta.authorization_endpoint),
                token: p.endpoints.token.clone().or(meta.token_endpoint),
                revocation: p.endpoints.revocation.clone().or(meta.revocation_endpoint),
                device_authorization: p
                    .endpoints
                    .device_authorization
                    .clone()
                    .or(meta.device_authorization_endpoint),
            };
            self.endpoints
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(p.name.clone(), e.clone());
            return Ok(e);
        }
        Err(UpstreamError::Config {
            provider: p.name.clone(),
            detail: last,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_known_urls_follow_both_specs() {
        let u = Url::parse("https://id.example/tenant/v2").expect("url");
        let w: Vec<String> = well_known(&u).iter().map(Url::to_string).collect();
        assert_eq!(
            w,
            vec![
                "https://id.example/tenant/v2/.well-known/openid-configuration",
                "https://id.example/.well-known/oauth-authorization-server/tenant/v2",
            ]
        );
    }
}
