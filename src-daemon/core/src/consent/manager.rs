//! Pending consents, in memory only.
//!
//! Why memory: a consent is a question to a person who is looking at the
//! screen now. If the daemon restarts, the waiting agents lose their
//! connections anyway, and nothing half-made may survive: a grant is only
//! ever written, in one statement, when the user allows. So a restart
//! simply forgets every pending consent.
//!
//! Identical requests (same agent, binary, provider, scopes and resource)
//! fold into one prompt; each waiter holds a `watch` receiver and all see
//! the same resolution. Per-agent limits stop an agent from flooding the
//! user: a cap on distinct pending prompts and on new prompts per minute.
//! Decided consents are remembered for a few minutes so an agent that used
//! `wait: false` can still collect the answer with `consent.wait`.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use crate::clock::SharedClock;

use tokio::sync::watch;
use valetkey_ipc::control::{ConsentKind, ConsentRequest, Decision};

/// How a consent was settled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// Allowed with these scopes (possibly narrowed).
    Allowed {
        /// The scopes the user allowed.
        scopes: Vec<String>,
        /// The standing grant made, if any (not for "once").
        grant_id: Option<i64>,
        /// What the user chose.
        decision: Decision,
    },
    /// The user said no.
    Denied,
    /// Nobody answered in time.
    TimedOut,
    /// Refused because the session was locked.
    UserAway,
    /// The agent that asked went away (its connection closed) before
    /// anyone decided: nobody is left to serve.
    Withdrawn,
}

/// Why a new consent could not be opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Too many pending or too many per minute. `first` is true for the
    /// first refusal in the current minute (tell the user once, not 1000 times).
    Flood {
        /// First refusal this minute.
        first: bool,
    },
}

/// The outcome of [`Consents::ask`].
#[derive(Debug)]
pub struct Asked {
    /// The consent id.
    pub id: String,
    /// False when folded into an existing prompt.
    pub new: bool,
    /// Resolves when the user (or a timeout) decides.
    pub rx: watch::Receiver<Option<Resolution>>,
    /// The request as shown to the user.
    pub request: ConsentRequest,
}

/// What `consent.wait` finds.
#[derive(Debug)]
pub enum Lookup {
    /// Still pending.
    Pending(watch::Receiver<Option<Resolution>>, ConsentRequest),
    /// Already decided.
    Decided(Resolution, ConsentRequest),
}

#[derive(PartialEq, Eq, Hash, Clone)]
struct FoldKey {
    agent_id: i64,
    sha256: String,
    provider: String,
    scopes: Vec<String>,
    resource: Option<String>,
    kind: ConsentKind,
    delegation: Option<(String, u32, u64)>,
    proxy_only: bool,
}

impl FoldKey {
    fn of(r: &ConsentRequest) -> Self {
        Self {
            agent_id: r.agent_id,
            sha256: r.sha256.clone(),
            provider: r.provider.clone(),
            scopes: r.scopes.clone(),
            resource: r.resource.clone(),
            kind: r.kind,
            delegation: r
                .delegation
                .as_ref()
                .map(|d| (d.sub_agent.clone(), d.depth, d.ttl_secs)),
            proxy_only: r.proxy_only,
        }
    }
}

struct Entry {
    request: ConsentRequest,
    tx: watch::Sender<Option<Resolution>>,
    /// When it times out (Unix seconds, by the book's clock).
    deadline: i64,
    /// Asked with `wait: false`: `consent.wait` may collect it later, so
    /// it stays while nobody waits.
    kept: bool,
}

struct Rate {
    prompts: VecDeque<i64>,
    flood_told: Option<i64>,
}

/// Limits for [`Consents`].
#[derive(Debug, Clone)]
pub struct Limits {
    /// How long a consent stays pending.
    pub timeout: Duration,
    /// Distinct pending consents per agent.
    pub max_pending_per_agent: usize,
    /// New prompts per agent per minute.
    pub max_prompts_per_minute: usize,
}

/// Seconds a decided consent can still be collected with `consent.wait`.
const REMEMBER_DECIDED: i64 = 300;
/// The flood limits' window, in seconds.
const WINDOW: i64 = 60;

#[derive(Default)]
struct Inner {
    pending: Vec<Entry>,
    decided: HashMap<String, (Resolution, ConsentRequest, i64)>,
    rates: HashMap<i64, Rate>,
}

/// The pending-consent book.
pub struct Consents {
    inner: std::sync::Mutex<Inner>,
    limits: Limits,
    clock: SharedClock,
}

fn new_id() -> String {
    let mut b = [0u8; 16];
    // ring's system RNG; failure here means the OS RNG is broken.
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("c_{hex}")
}

impl Consents {
    /// An empty book.
    pub fn new(limits: Limits, clock: SharedClock) -> Self {
        Self {
            inner: Default::default(),
            limits,
            clock,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The configured timeout.
    pub fn timeout(&self) -> Duration {
        self.limits.timeout
    }

    /// Opens a consent for `request` (its `id`, `created_at`, `expires_at`
    /// and `requests` are filled in here), or folds it into an identical
    /// pending one.
    pub fn ask(&self, mut request: ConsentRequest) -> Result<Asked, Refusal> {
        let now = self.clock.now();
        let key = FoldKey::of(&request);
        let mut inner = self.lock();
        if let Some(e) = inner
            .pending
            .iter_mut()
            .find(|e| FoldKey::of(&e.request) == key)
        {
            e.request.requests += 1;
            return Ok(Asked {
                id: e.request.id.clone(),
                new: false,
                rx: e.tx.subscribe(),
                request: e.request.clone(),
            });
        }
        let agent_id = request.agent_id;
        let pending_for_agent = inner
            .pending
            .iter()
            .filter(|e| e.request.agent_id == agent_id)
            .count();
        let rate = inner.rates.entry(agent_id).or_insert_with(|| Rate {
            prompts: VecDeque::new(),
            flood_told: None,
        });
        while rate.prompts.front().is_some_and(|t| now - *t > WINDOW) {
            rate.prompts.pop_front();
        }
        if pending_for_agent >= self.limits.max_pending_per_agent
            || rate.prompts.len() >= self.limits.max_prompts_per_minute
        {
            let first = rate.flood_told.is_none_or(|t| now - t > WINDOW);
            if first {
                rate.flood_told = Some(now);
            }
            return Err(Refusal::Flood { first });
        }
        rate.prompts.push_back(now);
        let timeout = self.limits.timeout.as_secs() as i64;
        request.id = new_id();
        request.created_at = now.max(0) as u64;
        request.expires_at = (now + timeout).max(0) as u64;
        request.requests = 1;
        let (tx, rx) = watch::channel(None);
        inner.pending.push(Entry {
            request: request.clone(),
            tx,
            deadline: now + timeout,
            kept: false,
        });
        Ok(Asked {
            id: request.id.clone(),
            new: true,
            rx,
            request,
        })
    }

    /// Settles a pending consent: every waiter sees `resolution`. Returns
    /// the request, or `None` if it was not pending (already settled).
    pub fn resolve(&self, id: &str, resolution: Resolution) -> Option<ConsentRequest> {
        let mut inner = self.lock();
        let pos = inner.pending.iter().position(|e| e.request.id == id)?;
        let e = inner.pending.remove(pos);
        let _ = e.tx.send(Some(resolution.clone()));
        let now = self.clock.now();
        inner
            .decided
            .retain(|_, (_, _, at)| now - *at < REMEMBER_DECIDED);
        inner
            .decided
            .insert(id.to_owned(), (resolution, e.request.clone(), now));
        Some(e.request)
    }

    /// A pending consent by id.
    pub fn get(&self, id: &str) -> Option<ConsentRequest> {
        self.lock()
            .pending
            .iter()
            .find(|e| e.request.id == id)
            .map(|e| e.request.clone())
    }

    /// For `consent.wait`: a pending or recently decided consent, only if it
    /// belongs to this agent binary (one agent cannot watch another's).
    pub fn lookup(&self, id: &str, agent_id: i64, sha256: &str) -> Option<Lookup> {
        let mut inner = self.lock();
        let mine = |r: &ConsentRequest| r.agent_id == agent_id && r.sha256 == sha256;
        if let Some(e) = inner.pending.iter().find(|e| e.request.id == id) {
            return mine(&e.request).then(|| Lookup::Pending(e.tx.subscribe(), e.request.clone()));
        }
        let (res, req, _) = inner.decided.get(id)?;
        if !mine(req) {
            return None;
        }
        let found = Lookup::Decided(res.clone(), req.clone());
        // "Allow once" is collected once, not once per call for five minutes.
        if matches!(
            res,
            Resolution::Allowed {
                decision: Decision::Once,
                ..
            }
        ) {
            inner.decided.remove(id);
        }
        Some(found)
    }

    /// Every pending consent, oldest first.
    pub fn list(&self) -> Vec<ConsentRequest> {
        self.lock()
            .pending
            .iter()
            .map(|e| e.request.clone())
            .collect()
    }

    /// How many consents are pending.
    pub fn pending_count(&self) -> usize {
        self.lock().pending.len()
    }

    /// Keeps a pending consent for `consent.wait` while nobody waits on
    /// it (it was asked with `wait: false`).
    pub fn keep(&self, id: &str) {
        if let Some(e) = self.lock().pending.iter_mut().find(|e| e.request.id == id) {
            e.kept = true;
        }
    }

    /// Ids of pending consents nobody waits for any more: every request
    /// that waited on it ended (its connection closed, the agent was
    /// killed), and none was asked to be kept.
    pub fn abandoned(&self) -> Vec<String> {
        self.lock()
            .pending
            .iter()
            .filter(|e| !e.kept && e.tx.receiver_count() == 0)
            .map(|e| e.request.id.clone())
            .collect()
    }

    /// Ids of pending consents past their deadline.
    pub fn overdue(&self) -> Vec<String> {
        let now = self.clock.now();
        self.lock()
            .pending
            .iter()
            .filter(|e| e.deadline <= now)
            .map(|e| e.request.id.clone())
            .collect()
    }

    /// Ids of pending consents, optionally only one agent's.
    pub fn ids(&self, agent_id: Option<i64>) -> Vec<String> {
        self.lock()
            .pending
            .iter()
            .filter(|e| agent_id.is_none_or(|a| e.request.agent_id == a))
            .map(|e| e.request.id.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use valetkey_ipc::methods::AgentInfo;

    fn book(max_pending: usize, per_minute: usize) -> Consents {
        Consents::new(
            Limits {
                timeout: Duration::from_secs(120),
                max_pending_per_agent: max_pending,
                max_prompts_per_minute: per_minute,
            },
            crate::clock::fixed::clock(),
        )
    }

    fn req(agent_id: i64, scopes: &[&str]) -> ConsentRequest {
        ConsentRequest {
            id: String::new(),
            agent_id,
            agent: AgentInfo {
                name: format!("a{agent_id}"),
                version: String::new(),
                purpose: String::new(),
            },
            exe: "/bin/x".into(),
            exe_unverified: false,
            confinement: None,
            foreign_namespaces: vec![],
            sha256: "ab".into(),
            pid: 1,
            parents: vec![],
            provider: "p".into(),
            provider_display: "P".into(),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            resource: None,
            duration_secs: None,
            created_at: 0,
            expires_at: 0,
            requests: 0,
            kind: ConsentKind::Access,
            reasons: vec![],
            delegation: None,
            in_words: vec![],
            action: String::new(),
            proxy_only: false,
            limit: None,
        }
    }

    #[test]
    fn a_consent_nobody_waits_for_is_abandoned_unless_it_was_kept() {
        let b = book(3, 10);
        let first = b.ask(req(1, &["r"])).expect("first");
        let joined = b.ask(req(1, &["r"])).expect("folded");
        assert!(b.abandoned().is_empty(), "two waiters");
        drop(first);
        assert!(b.abandoned().is_empty(), "one waiter left");
        drop(joined);
        let gone = b.abandoned();
        assert_eq!(gone.len(), 1, "the last waiter left");
        // Asked with wait: false, kept for consent.wait.
        let kept = b.ask(req(2, &["r"])).expect("kept");
        b.keep(&kept.id);
        drop(kept);
        assert_eq!(b.abandoned(), gone, "only the first one");
        b.resolve(&gone[0], Resolution::Withdrawn).expect("pending");
        assert!(b.abandoned().is_empty());
        assert_eq!(b.list().len(), 1, "the kept one is still up");
    }

    #[test]
    fn identical_requests_fold_and_all_waiters_see_the_decision() {
        let b = book(3, 10);
        let a = b.ask(req(1, &["r"])).expect("first");
        let c = b.ask(req(1, &["r"])).expect("second");
        assert!(a.new && !c.new);
        assert_eq!(a.id, c.id);
        assert_eq!(b.list()[0].requests, 2);
        let other = b.ask(req(1, &["w"])).expect("different scopes");
        assert_ne!(other.id, a.id);
        b.resolve(&a.id, Resolution::Denied).expect("pending");
        assert_eq!(*a.rx.borrow(), Some(Resolution::Denied));
        assert_eq!(*c.rx.borrow(), Some(Resolution::Denied));
        assert!(
            b.resolve(&a.id, Resolution::TimedOut).is_none(),
            "settled once"
        );
        assert_eq!(b.list().len(), 1);
    }

    #[test]
    fn floods_are_refused_and_reported_once_per_minute() {
        let b = book(2, 10);
        b.ask(req(1, &["a"])).expect("1");
        b.ask(req(1, &["b"])).expect("2");
        assert_eq!(
            b.ask(req(1, &["c"])).err(),
            Some(Refusal::Flood { first: true })
        );
        assert_eq!(
            b.ask(req(1, &["d"])).err(),
            Some(Refusal::Flood { first: false })
        );
        assert!(b.ask(req(2, &["a"])).is_ok(), "other agents unaffected");

        let b = book(100, 3);
        for s in ["a", "b", "c"] {
            let id = b.ask(req(1, &[s])).expect("under rate").id;
            b.resolve(&id, Resolution::Denied);
        }
        assert!(b.ask(req(1, &["d"])).is_err(), "4th prompt in a minute");
    }

    #[test]
    fn only_the_asking_agent_binary_can_look_a_consent_up() {
        let b = book(3, 10);
        let a = b.ask(req(1, &["r"])).expect("ask");
        assert!(matches!(
            b.lookup(&a.id, 1, "ab"),
            Some(Lookup::Pending(..))
        ));
        assert!(b.lookup(&a.id, 2, "ab").is_none());
        assert!(b.lookup(&a.id, 1, "other-binary").is_none());
        b.resolve(&a.id, Resolution::TimedOut);
        assert!(matches!(
            b.lookup(&a.id, 1, "ab"),
            Some(Lookup::Decided(Resolution::TimedOut, _))
        ));
        assert!(b.lookup("c_nope", 1, "ab").is_none());
    }
}
