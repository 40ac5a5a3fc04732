//! Valet Key's core: everything the broker decides and remembers, with no
//! sockets, no daemon and no command line in it. `valetkeyd` (the
//! daemon) wraps it in sockets and handlers; `valetkey` (the CLI) uses its
//! config, keychain, login flows and read-only audit verification.
//!
//! The modules follow a request's path:
//!
//! * [`attest`]: who the peer process is (exe, hash, start time, parents);
//! * [`boxes`]: agents started in a box by `valetkey run`: what was
//!   launched, the profile, and which connections come from inside;
//! * [`access`]: the steps of `hello`, `token.get`, `consent.wait` and
//!   `delegation.create`, for a [`caller::Caller`];
//! * [`store`]: providers' login state, the agent registry, grants (SQLite);
//! * [`tokens`]: the access-token cache and single-flight refresh;
//! * [`policy`]: the Rego policy step every request goes through;
//! * [`delegation`]: broker-signed tokens for sub-agents, and their
//!   revocation list;
//! * [`consent`]: pending consents, decisions, one-click revocation;
//! * [`control`]: what the user does from the tray or the CLI: decide
//!   consents, revoke, pause, rotate keys, reload policies;
//! * [`agents`]: the registry as the user sees and changes it, and each
//!   agent's lifecycle (suspend, resume, review, deprecate, reinstate);
//! * [`audit`]: the hash-chained record of every decision, with its actor;
//!   [`record`] writes to it, [`observe`] also feeds the monitor and acts
//!   on what it finds;
//! * [`monitor`]: anomaly rules over what agents do;
//! * [`proxy`]: the egress proxy's decisions for boxes in `proxy` mode:
//!   hosts, placeholders, the box's CA (its request rules are config, in
//!   [`config::rules`]; a request's way through the broker is
//!   [`access::proxied`]);
//! * [`events`]: the activity log and the event bus the tray listens to;
//! * [`live`]: switches that end an agent's live sessions on revocation;
//! * [`grants`]: standing grants made ahead of time, and listing them;
//! * [`logins`]: provider logins as the daemon records and ends them;
//! * [`mcp`]: remote MCP servers as providers: discovery, client
//!   registration, and the servers the user added;
//! * [`oauth`]: discovery, refresh, login, revocation against providers;
//! * [`keychain`]: refresh tokens and client secrets in the Secret Service;
//! * [`config`], [`dirs`]: where things are and how providers are set up;
//! * [`clock`]: the one clock everything reads the time from;
//! * [`scope`]: a set of scopes, sorted once, compared one way;
//! * [`broker`]: the services put together.

pub mod access;
pub mod agents;
pub mod attest;
pub mod audit;
pub mod boxes;
pub mod broker;
pub mod caller;
pub mod clock;
pub mod config;
pub mod consent;
pub mod control;
pub mod delegation;
pub mod dirs;
pub mod error;
pub mod events;
pub mod grants;
pub mod keychain;
pub mod live;
pub mod logins;
pub mod mcp;
pub mod monitor;
pub mod oauth;
pub mod observe;
pub mod policy;
pub mod proxy;
pub mod record;
pub mod scope;
pub mod secret;
pub mod shim;
pub mod store;
pub mod timefmt;
pub mod tokens;

#[cfg(test)]
mod inproc;
