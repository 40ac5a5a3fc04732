//! Human-in-the-loop consent: an agent without a grant asks, the user
//! decides in the tray, a notification or the CLI, and the waiting agent
//! gets its token (or a clear refusal).
//!
//! * [`manager`]: the in-memory book of pending consents (folding, limits).
//! * [`flow`]: asking, waiting, deciding and timing out, with the grant
//!   written in one statement only when the user allows.
//! * [`revoke`]: one-click revocation.

pub mod flow;
pub mod manager;
pub mod revoke;
