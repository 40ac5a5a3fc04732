//! The daemon's shared state: one cheap, clonable handle ([`Daemon`]) that
//! every connection task holds.

use std::sync::Arc;

use crate::attest::Attestor;
use crate::config::Config;
use crate::keychain::Keychain;
use crate::oauth::Upstream;
use crate::store::Store;
use crate::tokens::TokenService;

/// Everything a handler may touch.
pub struct State {
    /// The validated config.
    pub config: Config,
    /// Providers' login state, agents and grants.
    pub store: Store,
    /// Refresh tokens and client secrets.
    pub keychain: Keychain,
    /// HTTP clients and discovered endpoints.
    pub upstream: Upstream,
    /// Cache and single-flight refresh.
    pub tokens: TokenService,
    /// Peer attestation with its hash cache.
    pub attestor: Attestor,
}

/// A handle to the daemon's state.
pub type Daemon = Arc<State>;

impl State {
    /// Builds the state from its parts.
    pub fn new(config: Config, store: Store) -> Daemon {
        Arc::new(State {
            config,
            store,
            keychain: Keychain::new(),
            upstream: Upstream::new(),
            tokens: TokenService::default(),
            attestor: Attestor::default(),
        })
    }
}
