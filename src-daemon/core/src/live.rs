//! Switches that end an agent's live sessions. Revoking or suspending an
//! agent must cut it off at once, even in the middle of a request (say, a
//! consent wait); the daemon registers one switch per connection here and
//! closes the connection when it flips. The core only flips switches; it
//! knows nothing of the sockets behind them.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::watch;
use valetkey_ipc::ErrorCode;

/// Why a session was ended: the error its connection is told before it
/// closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// The agent was suspended or revoked (`agent_suspended`).
    Suspended,
    /// The agent was deprecated (`agent_deprecated`).
    Deprecated,
    /// A grant it held was revoked; the agent stays active
    /// (`grant_revoked`).
    GrantRevoked,
    /// A delegation in its chain was revoked (`delegation_revoked`).
    DelegationRevoked,
}

impl Cut {
    /// The code and the message the connection gets.
    pub fn error(self) -> (ErrorCode, &'static str) {
        match self {
            Cut::Suspended => (ErrorCode::AgentSuspended, "the user revoked or suspended this agent; the connection is closed (`valetkey resume` or `valetkey reinstate` lets it back)"),
            Cut::Deprecated => (ErrorCode::AgentDeprecated, "the user deprecated this agent; the connection is closed"),
            Cut::GrantRevoked => (ErrorCode::GrantRevoked, "the user revoked a grant this agent held; its tokens were dropped and the connection is closed. Reconnect and ask again to be prompted"),
            Cut::DelegationRevoked => (ErrorCode::DelegationRevoked, "a delegation in this sub-agent's chain was revoked; the connection is closed"),
        }
    }
}

/// One agent's connections, each with its switch.
type Switches = HashMap<u64, watch::Sender<Option<Cut>>>;

/// Live agent sessions by agent id, each with a switch that ends it.
#[derive(Default)]
pub struct Sessions {
    map: Mutex<HashMap<i64, Switches>>,
}

impl Sessions {
    /// Registers connection `conn_id` of `agent_id`; the receiver turns
    /// to why when the connection must close.
    pub fn register(&self, agent_id: i64, conn_id: u64) -> watch::Receiver<Option<Cut>> {
        let (tx, rx) = watch::channel(None);
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

    /// Closes every connection of `agent_id` (or of every agent), for
    /// `why`; returns how many were told to close.
    pub fn close(&self, agent_id: Option<i64>, why: Cut) -> u32 {
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let mut n = 0;
        for (id, conns) in map.iter() {
            if agent_id.is_none_or(|a| a == *id) {
                for tx in conns.values() {
                    let _ = tx.send(Some(why));
                    n += 1;
                }
            }
        }
        n
    }
}
