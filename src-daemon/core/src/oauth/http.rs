//! The HTTP transport under `oauth2`, with failures classified so the
//! caller knows what is safe to retry.

use std::time::Duration;

use super::UpstreamError;
use crate::config::Provider;

/// Transport-level failure of one HTTP exchange.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The request never reached the server (safe to retry).
    #[error("cannot connect: {0}")]
    Connect(String),
    /// No answer in time (the server may have acted on it: not retried).
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The server answered with a 5xx or 429 status.
    #[error("HTTP {0}")]
    Status(u16),
    /// Anything else.
    #[error("{0}")]
    Other(String),
}

impl HttpError {
    /// Whether a retry cannot cause a refresh token to be used twice:
    /// the request was not delivered, or the server says it did not act
    /// (429, 502, 503, 504). A 500 or a timeout is not retried, since the
    /// server may already have rotated the refresh token.
    pub fn retryable(&self) -> bool {
        match self {
            HttpError::Connect(_) => true,
            HttpError::Status(s) => matches!(s, 429 | 502 | 503 | 504),
            _ => false,
        }
    }
}

pub(super) fn build_client(p: &Provider) -> Result<reqwest::Client, UpstreamError> {
    let config = |detail: String| UpstreamError::Config {
        provider: p.name.clone(),
        detail,
    };
    let mut b = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(p.timeout)
        .connect_timeout(p.timeout.min(Duration::from_secs(5)))
        .user_agent(concat!("valetkey/", env!("CARGO_PKG_VERSION")));
    if let Some(ca) = &p.ca_file {
        let pem =
            std::fs::read(ca).map_err(|e| config(format!("ca_file {}: {e}", ca.display())))?;
        for cert in reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| config(format!("ca_file {}: {e}", ca.display())))?
        {
            b = b.add_root_certificate(cert);
        }
    }
    for (host, addr) in &p.connect_to {
        // reqwest connects to `addr`'s port; the name checked is `host`.
        b = b.resolve(host, *addr);
    }
    b.build().map_err(|e| config(format!("HTTP client: {e}")))
}

/// The `oauth2` HTTP client: a reqwest client plus the provider's timeout.
/// A named type (not a closure) so its future is `Send` for any lifetime.
pub(super) struct Transport {
    pub client: reqwest::Client,
    pub timeout: Duration,
}

impl<'c> oauth2::AsyncHttpClient<'c> for Transport {
    type Error = HttpError;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<oauth2::HttpResponse, HttpError>> + Send + 'c>,
    >;

    fn call(&'c self, request: oauth2::HttpRequest) -> Self::Future {
        Box::pin(send(&self.client, self.timeout, request))
    }
}

/// Sends one `oauth2` request with `client`.
async fn send(
    client: &reqwest::Client,
    timeout: Duration,
    req: oauth2::HttpRequest,
) -> Result<oauth2::HttpResponse, HttpError> {
    let (parts, body) = req.into_parts();
    let url = parts.uri.to_string();
    let resp = client
        .request(parts.method, &url)
        .headers(parts.headers)
        .body(body)
        .send()
        .await
        .map_err(|e| classify(e, timeout))?;
    let status = resp.status();
    if status.is_server_error() || status.as_u16() == 429 {
        return Err(HttpError::Status(status.as_u16()));
    }
    let headers = resp.headers().clone();
    let bytes = resp.bytes().await.map_err(|e| classify(e, timeout))?;
    let mut out = http::Response::builder().status(status);
    if let Some(h) = out.headers_mut() {
        *h = headers;
    }
    out.body(bytes.to_vec())
        .map_err(|e| HttpError::Other(e.to_string()))
}

fn classify(e: reqwest::Error, timeout: Duration) -> HttpError {
    if e.is_timeout() {
        HttpError::Timeout(timeout)
    } else if e.is_connect() {
        HttpError::Connect(e.without_url().to_string())
    } else {
        HttpError::Other(e.without_url().to_string())
    }
}

/// The provider's clock, from the `Date` header of its issuer (or token
/// endpoint) URL, as seconds it is ahead of ours (negative: behind).
/// Used by `valetkey doctor`: token lifetimes and delegation-token expiry
/// both assume the clocks agree.
pub async fn clock_skew(p: &Provider) -> Result<i64, UpstreamError> {
    let unavailable = |detail: String| UpstreamError::Unavailable {
        provider: p.name.clone(),
        detail,
    };
    let url = p
        .issuer
        .clone()
        .or_else(|| p.endpoints.token.clone())
        .ok_or_else(|| UpstreamError::Config {
            provider: p.name.clone(),
            detail: "neither issuer nor token_endpoint is set".into(),
        })?;
    let client = build_client(p)?;
    let before = std::time::SystemTime::now();
    let resp = client
        .head(url)
        .send()
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    let date = resp
        .headers()
        .get(http::header::DATE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok())
        .ok_or_else(|| unavailable("no Date header in its answer".into()))?;
    let secs = |t: std::time::SystemTime| {
        t.duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)
    };
    Ok(secs(date) - secs(before))
}
