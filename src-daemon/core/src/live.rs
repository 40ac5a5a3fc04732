//! Switches that end an agent's live sessions. Revoking or suspending an
//! agent must cut it off at once, even in the middle of a request (say, a
//! consent wait); the daemon registers one switch per connection here and
//! closes the connection when it flips. The core only flips switches; it
//! knows nothing of the sockets behind them.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::watch;

/// Live agent sessions by agent id, each with a switch that ends it.
#[derive(Default)]
pub struct Sessions {
    map: Mutex<HashMap<i64, HashMap<u64, watch::Sender<bool>>>>,
}

impl Sessions {
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
