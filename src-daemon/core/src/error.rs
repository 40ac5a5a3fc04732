//! The daemon's internal error, and its one mapping onto wire error codes.
//!
//! Handlers return [`BrokerError`]; the dispatcher turns it into the
//! JSON-RPC error the agent sees. Every message says what to do next, and
//! none ever carries a secret (the inner errors are built to exclude them).

use valetkey_ipc::{ErrorCode, RpcError};

use crate::keychain::KeychainError;
use crate::oauth::UpstreamError;
use crate::store::StoreError;

/// Anything a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// A fully formed protocol error.
    #[error(transparent)]
    Rpc(#[from] RpcError),
    /// The keychain failed.
    #[error(transparent)]
    Keychain(#[from] KeychainError),
    /// The provider failed.
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    /// The state database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl BrokerError {
    /// Shorthand for a protocol error.
    pub fn rpc(code: ErrorCode, message: impl Into<String>) -> Self {
        BrokerError::Rpc(RpcError::new(code, message))
    }

    /// `proxy_only` for `provider`, saying why: no raw token for a box in
    /// `proxy` mode, nor under what was allowed for one.
    pub fn proxy_only(provider: &str, why: &str) -> Self {
        RpcError::new(
            ErrorCode::ProxyOnly,
            format!("no token for {provider}: {why}. In a box started with --net proxy, send requests to the provider through the proxy (HTTPS_PROXY is set), without a credential or with a placeholder (token.placeholder, or --env)"),
        )
        .with("provider", provider)
        .into()
    }

    /// The wire code this error maps to: the one place that decides it.
    pub fn code(&self) -> ErrorCode {
        match self {
            BrokerError::Rpc(r) => ErrorCode::from_code(r.code).unwrap_or(ErrorCode::Internal),
            BrokerError::Keychain(KeychainError::Locked) => ErrorCode::KeychainLocked,
            BrokerError::Keychain(_) => ErrorCode::KeychainUnavailable,
            BrokerError::Upstream(UpstreamError::InvalidGrant { .. }) => {
                ErrorCode::ProviderLoginRequired
            }
            BrokerError::Upstream(UpstreamError::Unavailable { .. }) => {
                ErrorCode::ProviderUnavailable
            }
            BrokerError::Upstream(_) => ErrorCode::ProviderRejected,
            BrokerError::Store(_) => ErrorCode::StateUnavailable,
        }
    }
}

impl From<BrokerError> for RpcError {
    fn from(e: BrokerError) -> RpcError {
        let code = e.code();
        let msg = e.to_string();
        match e {
            BrokerError::Rpc(r) => r,
            BrokerError::Upstream(
                UpstreamError::InvalidGrant { provider, .. }
                | UpstreamError::Unavailable { provider, .. }
                | UpstreamError::Config { provider, .. },
            ) => RpcError::new(code, msg).with("provider", provider),
            BrokerError::Upstream(UpstreamError::Rejected { provider, error, .. }) => {
                RpcError::new(code, msg)
                    .with("provider", provider)
                    .with("oauth_error", error)
            }
            BrokerError::Store(_) => RpcError::new(
                code,
                format!("{msg}; nothing was issued. Check disk space and permissions of the data directory"),
            ),
            BrokerError::Keychain(_) => RpcError::new(code, msg),
        }
    }
}
