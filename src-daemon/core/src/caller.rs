//! The caller of an agent request: what the socket proved about the peer
//! process, and what `hello` declared on top. The daemon keeps one per
//! connection; every step of [`crate::access`] and every audit record
//! about a request takes it.

use std::sync::{Arc, Mutex};

use valetkey_ipc::methods::{AgentInfo, DelegationInfo, PeerIdentity, RequestContext};
use valetkey_ipc::policy::PolicyDecision;

/// Who is asking: the attested process, and after `hello` the agent it
/// declared itself to be (and, for a sub-agent, its verified delegation).
#[derive(Debug)]
pub struct Caller {
    /// The connection it came on (unique for the daemon's life): repeat
    /// hand-outs are counted per token and connection.
    pub session: u64,
    /// What attestation found (uid, pid, exe, hash, start time, parents).
    pub identity: PeerIdentity,
    /// Set by `hello`: registry id and self-description.
    pub agent: Option<(i64, AgentInfo)>,
    /// Set by `hello` with a delegation token: the verified chain.
    pub delegation: Option<DelegationInfo>,
    /// Set by `hello`: who this caller acts for, outermost first
    /// (`user:…`, `agent:…`); a sub-agent's is its delegation's chain.
    own_chain: Vec<String>,
    /// The egress proxy this (unboxed) connection opened with
    /// `proxy.open`: its placeholders are minted there.
    pub egress: Option<Arc<crate::proxy::BoxProxy>>,
    /// The last policy decision on this connection and what it was made
    /// for: an agent asking for the same thing again gets it without the
    /// input document being built, cloned and hashed (see
    /// [`crate::access::gate`]).
    pub policy_memo: Mutex<Option<PolicyMemo>>,
}

/// A policy decision and the facts that, together with the policy set
/// and the agent's registry record, fully determine it (when the policy
/// reads neither the clock nor the request rate).
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyMemo {
    /// The policy set in force (its address: a reload makes a new one).
    pub set: usize,
    /// The agent's registry record (its address: any change makes a new one).
    pub agent: usize,
    /// Provider.
    pub provider: String,
    /// Sorted scopes.
    pub scopes: Vec<String>,
    /// Resource indicator.
    pub indicator: Option<String>,
    /// What the agent declared.
    pub context: Option<RequestContext>,
    /// The MCP request a proxied token was for.
    pub mcp: Option<valetkey_ipc::policy::PolicyMcp>,
    /// When the access would end (Unix seconds).
    pub expires_at: i64,
    /// The decision.
    pub decision: Arc<PolicyDecision>,
    /// The action, as the policy saw it.
    pub action: Arc<str>,
    /// Whose data, as the policy saw it.
    pub resource_owner: Arc<str>,
}

impl Caller {
    /// A caller on connection `session` that has not said hello yet.
    pub fn new(session: u64, identity: PeerIdentity) -> Self {
        Self {
            session,
            identity,
            agent: None,
            delegation: None,
            own_chain: vec![],
            egress: None,
            policy_memo: Mutex::new(None),
        }
    }

    /// Greets the caller as `agent` (and, for a sub-agent, its verified
    /// delegation).
    pub fn greet(&mut self, id: i64, agent: AgentInfo, delegation: Option<DelegationInfo>) {
        self.own_chain = vec![
            format!("user:{}", crate::store::os_user_ref()),
            format!("agent:{}", agent.name),
        ];
        self.agent = Some((id, agent));
        self.delegation = delegation;
    }

    /// Who the caller acts for, outermost first: `user:…`, `agent:…`, and
    /// for a sub-agent every ancestor down to itself. Just the user before
    /// `hello`.
    pub fn chain(&self) -> std::borrow::Cow<'_, [String]> {
        match (&self.delegation, self.agent.is_some()) {
            (Some(del), _) => std::borrow::Cow::Borrowed(&del.chain),
            (None, true) => std::borrow::Cow::Borrowed(&self.own_chain),
            (None, false) => {
                std::borrow::Cow::Owned(vec![format!("user:{}", crate::store::os_user_ref())])
            }
        }
    }

    /// Whether an egress proxy holds this caller's tokens: it is a box in
    /// `proxy` mode, or it opened a proxy (`proxy.open`).
    pub fn proxied(&self) -> bool {
        self.egress.is_some() || self.in_proxy_box()
    }

    /// Whether the caller is a box whose network is the egress proxy: it
    /// holds no token, ever (see [`crate::access::withheld`]).
    pub fn in_proxy_box(&self) -> bool {
        self.identity
            .confinement
            .as_ref()
            .is_some_and(|b| b.network == "proxy")
    }

    /// The caller as a greeted agent, if it said hello.
    pub fn greeted(&self) -> Option<Greeted<'_>> {
        self.agent.as_ref().map(|(id, agent)| Greeted {
            caller: self,
            id: *id,
            agent,
        })
    }
}

/// A caller that said hello: what every agent method but `hello` and
/// `jwks` is handled for. Dispatch makes one or answers `hello_required`,
/// so no handler checks `hello` again. It reads as the [`Caller`] it
/// borrows.
#[derive(Debug, Clone, Copy)]
pub struct Greeted<'a> {
    caller: &'a Caller,
    /// The agent's registry id.
    pub id: i64,
    /// What `hello` declared.
    pub agent: &'a AgentInfo,
}

impl std::ops::Deref for Greeted<'_> {
    type Target = Caller;

    fn deref(&self) -> &Caller {
        self.caller
    }
}
