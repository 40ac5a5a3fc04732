//! The in-process test tier: the whole core (an in-memory store, the real
//! policy engine, consent manager, token service, audit and monitor) over
//! a fake keychain and a fake provider, driven through the same entry
//! points the daemon's handlers call, with a pinned clock.
//!
//! It sits between the unit tests (one module) and the e2e suite (real
//! processes, sockets, gnome-keyring and the `oidc-provider` IdP): a path
//! through several modules is tested here in milliseconds, and failures
//! the real parts cannot be made to produce on demand (a keychain that
//! refuses the rotated refresh token, a provider that widens a token) are
//! injected through the ports. New core logic gets its tests here first.

mod boxed;
mod consent;
mod fakes;
mod narrowing;
mod proxy_only;
mod revoke;
mod rotation;
mod single_flight;
mod token_get;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use valetkey_ipc::admin::LoginRecordParams;
use valetkey_ipc::control::{ConsentDecideResult, ConsentRequest, Decision};
use valetkey_ipc::methods::{AgentInfo, HelloParams, PeerIdentity, TokenGetParams};
use valetkey_ipc::{ErrorCode, PROTOCOL_VERSION};

use crate::access::token::Handed;
use crate::broker::{Broker, Ports, Shared};
use crate::caller::{Caller, Greeted};
use crate::clock::{fixed, ManualClock};
use crate::config::Config;
use crate::error::BrokerError;
use crate::keychain::Item;
use crate::policy::Policies;
use crate::store::Store;

pub use fakes::{Answer, FakeKeychain, FakeUpstream};

/// Two providers: `gh` narrows on refresh and revokes agents' tokens
/// upstream on revocation; `wide` cannot narrow.
const CONFIG: &str = r#"
[providers.gh]
issuer = "https://idp.example"
client_id = "valetkey"
allowed_scopes = ["admin", "read", "write"]
narrows_on_refresh = true
revoke_agent_tokens = true

[providers.wide]
issuer = "https://wide.example"
client_id = "valetkey"
allowed_scopes = ["a", "b"]
narrows_on_refresh = false
"#;

/// A broker over fakes, and handles on the fakes.
pub struct World {
    /// The broker, as the daemon's handlers hold it.
    pub d: Shared,
    /// The keychain behind it.
    pub keychain: Arc<FakeKeychain>,
    /// The provider behind it.
    pub upstream: Arc<FakeUpstream>,
    /// Its clock, pinned to a Monday morning.
    pub clock: Arc<ManualClock>,
    sessions: AtomicU64,
    _dir: tempfile::TempDir,
}

impl World {
    /// The built-in policy only.
    pub fn new() -> World {
        Self::with_policy(None, "")
    }

    /// With `rego` as the user's policy file, and `extra` appended to
    /// the config.
    pub fn with_policy(rego: Option<&str>, extra: &str) -> World {
        let dir = tempfile::tempdir().expect("tempdir");
        if let Some(text) = rego {
            std::fs::create_dir(dir.path().join("policies")).expect("mkdir");
            std::fs::write(dir.path().join("policies/user.rego"), text).expect("write");
        }
        let config = Config::parse(&dir.path().join("config.toml"), &format!("{CONFIG}{extra}"))
            .expect("config");
        let clock = ManualClock::at(fixed::MONDAY_MORNING);
        let store = Store::open_in_memory(clock.clone()).expect("db");
        let policies = Policies::load(&config, dir.path(), clock.clone());
        let keychain = Arc::new(FakeKeychain::default());
        let upstream = Arc::new(FakeUpstream::default());
        let ports = Ports {
            keychain: keychain.clone(),
            upstream: upstream.clone(),
            journal: Some(dir.path().join("rotations")),
        };
        World {
            d: Broker::assemble(config, store, policies, ports),
            keychain,
            upstream,
            clock,
            sessions: AtomicU64::new(0),
            _dir: dir,
        }
    }

    /// A user login to `provider` that granted `scopes`: refresh token
    /// `refresh-0` in the keychain, the login recorded as the CLI does.
    pub fn login(&self, provider: &str, scopes: &[&str]) {
        self.keychain.put(Item::RefreshToken(provider), "refresh-0");
        crate::logins::record(
            &self.d,
            LoginRecordParams {
                provider: provider.into(),
                scopes: scopes.iter().map(|s| s.to_string()).collect(),
            },
        )
        .expect("login recorded");
    }

    /// A new connection from binary `exe`, not greeted yet.
    pub fn connect(&self, exe: &str) -> Caller {
        let session = self.sessions.fetch_add(1, Ordering::Relaxed) + 1;
        let sha256 = crate::attest::hex(
            ring::digest::digest(&ring::digest::SHA256, exe.as_bytes()).as_ref(),
        );
        Caller::new(
            session,
            PeerIdentity {
                uid: 1000,
                pid: 4000 + session as u32,
                exe: format!("/usr/bin/{exe}"),
                sha256,
                start_time: session,
                parents: vec![],
                foreign_namespaces: vec![],
                exe_unverified: false,
                confinement: None,
            },
        )
    }

    /// A new connection from `exe` running `script` in a box (pinned to
    /// agent `pinned`, if given), not greeted yet.
    pub fn connect_boxed(&self, exe: &str, script: &str, pinned: Option<&str>) -> Caller {
        let mut c = self.connect(exe);
        let sha = |s: &str| {
            crate::attest::hex(ring::digest::digest(&ring::digest::SHA256, s.as_bytes()).as_ref())
        };
        let program = valetkey_ipc::methods::FileFact {
            path: c.identity.exe.clone(),
            sha256: c.identity.sha256.clone(),
        };
        let script = valetkey_ipc::methods::FileFact {
            path: format!("/work/{script}"),
            sha256: sha(script),
        };
        c.identity.confinement = Some(valetkey_ipc::methods::BoxFacts {
            id: format!("b_{:016x}", c.session),
            profile: "default".into(),
            network: "shared".into(),
            name: pinned.map(str::to_owned),
            argv: vec![exe.into(), script.path.clone()],
            cwd: "/work".into(),
            entry_sha256: crate::boxes::entry::entry_hash(
                &program.sha256,
                &[],
                Some(&script.sha256),
            ),
            program,
            script: Some(script),
        });
        c
    }

    /// A connection from binary `exe` that said hello as `name`.
    pub fn agent(&self, name: &str, exe: &str) -> Caller {
        let mut c = self.connect(exe);
        crate::access::hello::handle(&self.d, &mut c, hello(name)).expect("hello");
        c
    }

    /// `token.get` for `scopes` on `provider`, waiting for consent.
    pub async fn get(
        &self,
        c: &Caller,
        provider: &str,
        scopes: &[&str],
    ) -> Result<Handed, BrokerError> {
        crate::access::token::handle(&self.d, g(c), ask(provider, scopes, true)).await
    }

    /// Waits (yielding to the tasks that run the requests) until a consent
    /// is pending, and returns the oldest one.
    pub async fn prompt(&self) -> ConsentRequest {
        for _ in 0..10_000 {
            if let Some(c) = self.d.consents.list().into_iter().next() {
                return c;
            }
            tokio::task::yield_now().await;
        }
        panic!("no consent was asked for");
    }

    /// The user decides consent `id`.
    pub fn decide(
        &self,
        id: &str,
        decision: Decision,
        scopes: Option<&[&str]>,
    ) -> Result<ConsentDecideResult, BrokerError> {
        let scopes = scopes.map(|s| s.iter().map(|s| s.to_string()).collect());
        crate::consent::flow::decide(&self.d, id, decision, scopes)
    }

    /// Grants `name` (as greeted by `c`) `scopes` on `provider`, by the
    /// consent path: asked, and allowed always.
    pub async fn grant(&self, c: &Caller, provider: &str, scopes: &[&str]) -> Handed {
        self.allow(c, provider, scopes, Decision::Always)
            .await
            .expect("token after consent")
    }

    /// `token.get` with the user answering its prompt with `decision`.
    pub async fn allow(
        &self,
        c: &Caller,
        provider: &str,
        scopes: &[&str],
        decision: Decision,
    ) -> Result<Handed, BrokerError> {
        let (got, decided) = tokio::join!(self.get(c, provider, scopes), async {
            let p = self.prompt().await;
            self.decide(&p.id, decision, None)
        });
        decided.expect("decided");
        got
    }

    /// The outcomes of the audit records of this `kind`, oldest first.
    pub fn audit(&self, kind: &str) -> Vec<String> {
        let all = self.d.store.audit_range(0, 100_000).expect("audit");
        all.into_iter()
            .filter(|r| r.kind == kind)
            .map(|r| r.outcome)
            .collect()
    }
}

/// The caller as greeted (it must have said hello).
pub fn g(c: &Caller) -> Greeted<'_> {
    c.greeted().expect("said hello")
}

/// `hello` params for an agent named `name`.
pub fn hello(name: &str) -> HelloParams {
    HelloParams {
        protocol: PROTOCOL_VERSION,
        agent: AgentInfo {
            name: name.into(),
            version: "1.0".into(),
            purpose: "tests".into(),
        },
        delegation: None,
    }
}

/// `token.get` params.
pub fn ask(provider: &str, scopes: &[&str], wait: bool) -> TokenGetParams {
    TokenGetParams {
        provider: provider.into(),
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
        resource: None,
        wait: Some(wait),
        duration_secs: None,
        context: None,
    }
}

/// The error code of a refusal (and panics on success).
pub fn code<T: std::fmt::Debug>(r: Result<T, BrokerError>) -> ErrorCode {
    r.expect_err("refused").code()
}

/// The access token handed out.
pub fn token(h: &Handed) -> &str {
    h.0.token.expose()
}
