//! Connection caps, one per socket: `agent.sock`, `control.sock`, each
//! box's socket and each box's egress proxy count apart, so a client that
//! floods one shuts out only that socket's clients.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A full socket: its cap and the `[limits]` key that sets it.
#[derive(Debug, Clone, Copy)]
pub struct Full {
    /// The cap.
    pub cap: usize,
    /// `max_connections`, `control_connections`, `box_connections` or
    /// `box_proxy_connections`.
    pub key: &'static str,
}

/// One socket's connection cap.
#[derive(Clone)]
pub struct Cap {
    permits: Arc<Semaphore>,
    /// The cap and its key (for the refusal).
    full: Full,
}

impl Cap {
    /// A cap of `n` connections, set by `[limits] key`.
    pub fn new(n: usize, key: &'static str) -> Cap {
        Cap {
            permits: Arc::new(Semaphore::new(n)),
            full: Full { cap: n, key },
        }
    }

    /// A slot, held for the connection's life, or why there is none.
    pub fn take(&self) -> Result<OwnedSemaphorePermit, Full> {
        self.permits
            .clone()
            .try_acquire_owned()
            .map_err(|_| self.full)
    }
}
