//! The caller of an agent request: what the socket proved about the peer
//! process, and what `hello` declared on top. The daemon keeps one per
//! connection; every step of [`crate::access`] and every audit record
//! about a request takes it.

use valetkey_ipc::methods::{AgentInfo, DelegationInfo, PeerIdentity};
use valetkey_ipc::ErrorCode;

use crate::error::BrokerError;

/// Who is asking: the attested process, and after `hello` the agent it
/// declared itself to be (and, for a sub-agent, its verified delegation).
#[derive(Debug, Clone)]
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
}

impl Caller {
    /// A caller on connection `session` that has not said hello yet.
    pub fn new(session: u64, identity: PeerIdentity) -> Self {
        Self {
            session,
            identity,
            agent: None,
            delegation: None,
        }
    }

    /// The greeted agent, or `hello_required`.
    pub fn greeted(&self) -> Result<(i64, &AgentInfo), BrokerError> {
        self.agent
            .as_ref()
            .map(|(id, a)| (*id, a))
            .ok_or_else(|| BrokerError::rpc(ErrorCode::HelloRequired, "call hello first"))
    }
}
