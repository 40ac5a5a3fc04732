//! The daemon's shared state: one cheap, clonable handle ([`Daemon`]) that
//! every connection task holds.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use valetkey_ipc::control::StatusResult;

use crate::attest::Attestor;
use crate::clock::SharedClock;
use crate::config::Config;
use crate::consent::manager::{Consents, Limits};
use crate::delegation::keys::Signer;
use crate::events::Events;
use crate::keychain::Keychain;
use crate::monitor::Monitor;
use crate::oauth::Upstream;
use crate::policy::{Policies, Rates};
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
    /// Pending consents.
    pub consents: Consents,
    /// The event bus (activity log and tray).
    pub events: Events,
    /// Live agent connections, to close them on revocation.
    pub conns: AgentConns,
    /// The policies in force.
    pub policies: Policies,
    /// Requests per agent in the last minute.
    pub rates: Rates,
    /// The delegation (and audit checkpoint) signing key.
    pub signer: Signer,
    /// Per-agent counters for the anomaly rules.
    pub monitor: Monitor,
    /// What time it is (the one clock; tests pin it).
    pub clock: SharedClock,
    /// Issuing paused by the user.
    paused: AtomicBool,
    /// Session locked, as logind / the screensaver last said.
    locked: watch::Sender<bool>,
}

/// A handle to the daemon's state.
pub type Daemon = Arc<State>;

impl State {
    /// Builds the state from its parts; the policy is read from the
    /// config's policy directory (last good copy kept in the data dir).
    pub fn new(config: Config, store: Store) -> Daemon {
        let policies = Policies::load(&config, &crate::dirs::data_dir());
        Self::with_policies(config, store, policies)
    }

    /// Builds the state with given policies.
    pub fn with_policies(config: Config, store: Store, policies: Policies) -> Daemon {
        let limits = Limits {
            timeout: config.consent.timeout,
            max_pending_per_agent: config.consent.max_pending_per_agent,
            max_prompts_per_minute: config.consent.max_prompts_per_minute,
        };
        Arc::new(State {
            config,
            store,
            keychain: Keychain::new(),
            upstream: Upstream::new(),
            tokens: TokenService::default(),
            attestor: Attestor::default(),
            consents: Consents::new(limits),
            events: Events::default(),
            conns: AgentConns::default(),
            policies,
            rates: Rates::default(),
            signer: Signer::default(),
            monitor: Monitor::default(),
            clock: crate::clock::system(),
            paused: AtomicBool::new(false),
            locked: watch::channel(false).0,
        })
    }

    /// Whether issuing is paused.
    pub fn paused(&self) -> bool {
        self.paused.load(Ordering::SeqCst)
    }

    /// Pauses or resumes; returns whether it changed.
    pub fn set_paused(&self, paused: bool) -> bool {
        self.paused.swap(paused, Ordering::SeqCst) != paused
    }

    /// Whether the session is locked.
    pub fn locked(&self) -> bool {
        *self.locked.borrow()
    }

    /// Records the lock state; returns whether it changed.
    pub fn set_locked(&self, locked: bool) -> bool {
        self.locked
            .send_if_modified(|l| std::mem::replace(l, locked) != locked)
    }

    /// The state at a glance.
    pub fn status(&self) -> StatusResult {
        StatusResult {
            daemon_version: env!("CARGO_PKG_VERSION").into(),
            paused: self.paused(),
            session_locked: self.locked(),
            on_lock: self.config.consent.on_lock.as_str().into(),
            pending: self.consents.pending_count() as u32,
        }
    }
}

/// Live agent connections by agent id, each with a switch that closes it.
#[derive(Default)]
pub struct AgentConns {
    map: Mutex<HashMap<i64, HashMap<u64, watch::Sender<bool>>>>,
}

impl AgentConns {
    /// Registers connection `conn_id` of `agent_id`; the receiver turns
    /// `true` when the connection must close.
    pub fn register(&self, agent_id: i64, conn_id: u64) -> watch::Receiver<bool> {
        let (tx, rx) = watch::channel(false);
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(agent_id)
            .or_default()
            .insert(conn_id, tx);
        rx
    }

    /// Forgets a closed connection.
    pub fn unregister(&self, agent_id: i64, conn_id: u64) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(m) = map.get_mut(&agent_id) {
            m.remove(&conn_id);
            if m.is_empty() {
                map.remove(&agent_id);
            }
        }
    }

    /// Closes every connection of `agent_id` (or of every agent); returns
    /// how many were told to close.
    pub fn close(&self, agent_id: Option<i64>) -> u32 {
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let mut n = 0;
        for (id, conns) in map.iter() {
            if agent_id.is_none_or(|a| a == *id) {
                for tx in conns.values() {
                    let _ = tx.send(true);
                    n += 1;
                }
            }
        }
        n
    }
}
