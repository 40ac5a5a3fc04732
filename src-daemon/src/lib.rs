//! Valet Key: a local credential broker for AI agents.
//!
//! `valetkeyd` keeps OAuth refresh tokens in the OS keychain and hands each
//! agent a short-lived, down-scoped access token over a local socket. The
//! modules follow a request's path:
//!
//! * [`server`]: the socket, peer credentials, framing, dispatch;
//! * [`attest`]: who the peer process is (exe, hash, start time, parents);
//! * [`handlers`]: one per protocol method;
//! * [`store`]: providers' login state, the agent registry, grants (SQLite);
//! * [`tokens`]: the access-token cache and single-flight refresh;
//! * [`policy`]: the Rego policy step every request goes through;
//! * [`delegation`]: broker-signed tokens for sub-agents, and their
//!   revocation list;
//! * [`consent`]: pending consents, decisions, one-click revocation;
//! * [`audit`]: a decision record, with the whole actor chain, per request;
//! * [`events`], [`notify`], [`session`]: the activity log and tray events,
//!   desktop notifications, and the session lock watcher;
//! * [`oauth`]: discovery, refresh, login, revocation against providers;
//! * [`keychain`]: refresh tokens and client secrets in the Secret Service;
//! * [`config`], [`dirs`]: where things are and how providers are set up;
//! * [`clock`]: the one clock everything reads the time from;
//! * [`service`]: running under systemd (readiness, socket activation,
//!   watchdog) and installing the user units;
//! * [`cli`]: the `valetkey` command.

pub mod attest;
pub mod audit;
pub mod cli;
pub mod clock;
pub mod config;
pub mod consent;
pub mod delegation;
pub mod dirs;
pub mod error;
pub mod events;
pub mod handlers;
pub mod harden;
pub mod keychain;
pub mod monitor;
pub mod notify;
pub mod oauth;
pub mod policy;
pub mod secret;
pub mod server;
pub mod service;
pub mod session;
pub mod state;
pub mod store;
pub mod tokens;
