//! The broker's services put together: one cheap, clonable handle
//! ([`Shared`]) that the daemon's connection tasks hold.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::watch;
use valetkey_ipc::control::StatusResult;

use crate::attest::Attestor;
use crate::clock::SharedClock;
use crate::config::Config;
use crate::consent::manager::{Consents, Limits};
use crate::delegation::keys::Signer;
use crate::events::Events;
use crate::keychain::{Keychain, SecretService};
use crate::monitor::Monitor;
use crate::oauth::{HttpUpstream, Upstream};
use crate::policy::{Policies, Rates};
use crate::store::Store;
use crate::tokens::TokenService;

/// Everything a handler may touch.
pub struct Broker {
    /// The validated config.
    pub config: Config,
    /// Providers' login state, agents and grants.
    pub store: Store,
    /// Refresh tokens and client secrets.
    pub keychain: Arc<dyn Keychain>,
    /// HTTP clients and discovered endpoints.
    pub upstream: Arc<dyn Upstream>,
    /// Cache and single-flight refresh.
    pub tokens: TokenService,
    /// Peer attestation with its hash cache.
    pub attestor: Attestor,
    /// The open boxes (`valetkey run`).
    pub boxes: crate::boxes::registry::Boxes,
    /// The box profiles in force: `[box]` of config.toml, reloaded when
    /// the file changes ([`crate::control::reload_config`]).
    pub profiles: std::sync::RwLock<BoxProfiles>,
    /// Pending consents.
    pub consents: Consents,
    /// The event bus (activity log and tray).
    pub events: Events,
    /// Live agent sessions, to end them on revocation.
    pub live: crate::live::Sessions,
    /// The policies in force.
    pub policies: Policies,
    /// Requests per agent in the last minute.
    pub rates: Rates,
    /// The delegation (and audit checkpoint) signing key.
    pub signer: Signer,
    /// Per-agent counters for the anomaly rules.
    pub monitor: Monitor,
    /// Repeat hand-outs counted, to be written as `token.reused` records.
    pub reuse: crate::audit::reuse::Reuse,
    /// What time it is (the one clock; tests pin it).
    pub clock: SharedClock,
    /// Remote MCP servers added with `valetkey mcp add`: providers too.
    pub mcp: crate::mcp::Servers,
    /// Issuing paused by the user.
    paused: AtomicBool,
    /// Session locked, as logind / the screensaver last said.
    locked: watch::Sender<bool>,
}

/// What the broker reaches outside the process through: the keychain and
/// the providers' token endpoints.
pub struct Ports {
    /// Refresh tokens, client secrets and signing keys.
    pub keychain: Arc<dyn Keychain>,
    /// Refresh and revocation.
    pub upstream: Arc<dyn Upstream>,
    /// Where rotated refresh tokens are journalled before the keychain
    /// holds them (none: not journalled).
    pub journal: Option<std::path::PathBuf>,
}

/// A handle to the broker.
pub type Shared = Arc<Broker>;

/// `[box]` as last loaded, and why the last edit of config.toml was
/// refused, if it was.
#[derive(Debug, Clone)]
pub struct BoxProfiles {
    /// The profiles in force.
    pub section: Arc<crate::config::boxes::BoxSection>,
    /// The last reload's error (the profiles above stayed in force).
    pub refused: Option<String>,
}

impl Broker {
    /// The box profiles in force.
    pub fn box_profiles(&self) -> BoxProfiles {
        self.profiles
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Builds the state from its parts; the policy is read from the
    /// config's policy directory (last good copy kept in the data dir).
    pub fn new(config: Config, store: Store) -> Shared {
        let policies = Policies::load(&config, &crate::dirs::data_dir(), store.clock());
        Self::with_policies(config, store, policies)
    }

    /// Builds the state with given policies, over the real keychain and
    /// providers.
    pub fn with_policies(config: Config, store: Store, policies: Policies) -> Shared {
        let ports = Ports {
            keychain: Arc::new(SecretService::new()),
            upstream: Arc::new(HttpUpstream::new()),
            journal: Some(crate::dirs::data_dir().join("rotations")),
        };
        Self::assemble(config, store, policies, ports)
    }

    /// Builds the state over the given ports (the in-process tests pass
    /// fakes here).
    pub fn assemble(config: Config, store: Store, policies: Policies, ports: Ports) -> Shared {
        let limits = Limits {
            timeout: config.consent.timeout,
            max_pending_per_agent: config.consent.max_pending_per_agent,
            max_prompts_per_minute: config.consent.max_prompts_per_minute,
        };
        let clock = store.clock();
        let mcp = crate::mcp::load(&store, &config);
        let profiles = std::sync::RwLock::new(BoxProfiles {
            section: Arc::new(config.boxes.clone()),
            refused: None,
        });
        Arc::new(Broker {
            profiles,
            config,
            store,
            tokens: match ports.journal {
                Some(dir) => TokenService::new(ports.keychain.clone(), ports.upstream.clone())
                    .with_journal(dir),
                None => TokenService::new(ports.keychain.clone(), ports.upstream.clone()),
            },
            keychain: ports.keychain,
            upstream: ports.upstream,
            attestor: Attestor::default(),
            boxes: Default::default(),
            consents: Consents::new(limits, clock.clone()),
            events: Events::default(),
            live: crate::live::Sessions::default(),
            policies,
            rates: Rates::default(),
            signer: Signer::default(),
            monitor: Monitor::default(),
            reuse: Default::default(),
            clock,
            mcp,
            paused: AtomicBool::new(false),
            locked: watch::channel(false).0,
        })
    }

    /// A provider by name: a configured one, else an added MCP server.
    pub fn provider(&self, name: &str) -> Option<Arc<crate::config::Provider>> {
        match self.config.providers.get(name) {
            Some(p) => Some(p.clone()),
            None => self.mcp.get(name),
        }
    }

    /// Every provider's name: the configured ones, then the MCP servers.
    pub fn provider_names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.config.providers.keys().cloned().collect();
        v.extend(self.mcp.all().into_iter().map(|(p, _)| p.name.clone()));
        v
    }

    /// Every provider: the configured ones, then the MCP servers.
    pub fn providers(&self) -> Vec<Arc<crate::config::Provider>> {
        let mut v: Vec<_> = self.config.providers.values().cloned().collect();
        v.extend(self.mcp.all().into_iter().map(|(p, _)| p));
        v
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
