//! One handler per method, shaped `(state, session, params) -> Result`.
//! Handlers do no socket I/O; the dispatcher owns that.

pub mod control;
pub mod delegation;
pub mod gate;
pub mod hello;
pub mod providers;
pub mod token;
pub mod whoami;
