//! `valetkeyd`: the daemon around [`valetkey_core`]. It owns everything
//! that touches the outside world on the core's behalf:
//!
//! * [`server`]: the two sockets, peer credentials, framing, one frame
//!   loop per connection and the route tables;
//! * [`notify`]: desktop notifications, fed by the core's event bus, whose
//!   buttons come back as consent decisions;
//! * [`lockwatch`]: logind and the screensaver, telling the core when the
//!   session locks;
//! * [`policy_watch`]: reloads the policy when its files change;
//! * [`duties`]: audit checkpoints and retention on a timer;
//! * [`memory`]: giving the heap back after connections close;
//! * [`service`]: running under systemd (readiness, socket activation,
//!   watchdog);
//! * [`harden`]: process hardening before any secret is touched;
//! * [`args`]: the command line.

pub mod args;
pub mod duties;
pub mod harden;
pub mod lockwatch;
pub mod memory;
pub mod notify;
pub mod policy_watch;
pub mod server;
pub mod service;
