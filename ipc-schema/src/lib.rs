//! The Valet Key agent protocol: the one place that defines what crosses the
//! agent socket.
//!
//! Both sides (the daemon in `src-daemon` and every Rust client) link this
//! crate, so the wire format, the frame cap, the protocol version, the error
//! codes and the default socket path cannot drift apart. Agents written in
//! other languages use `PROTOCOL.md` and the JSON Schema in `schema/`, which a
//! test regenerates from these types and compares on every run.
//!
//! * [`codec`]: newline-delimited frames with a hard size cap.
//! * [`jsonrpc`]: the JSON-RPC 2.0 envelope.
//! * [`error`]: stable, named error codes agents can branch on.
//! * [`methods`]: one type per agent method with its params and result;
//!   [`confinement`]: what an agent's box was launched with.
//! * [`control`]: the control socket's methods and pushed events (tray, CLI),
//!   with [`admin`]'s methods through which the CLI changes state and
//!   [`boxes`]' through which `valetkey run` opens a box, and [`mcp`]'s
//!   through which `valetkey mcp add` records a remote MCP server;
//! * [`requests`]: each socket's methods, listed once, as one request enum
//!   per socket that the daemon's dispatchers match exhaustively.
//! * [`audit`]: one record of the audit trail.
//! * [`policy`]: the input document policies see, and their decisions.
//! * [`paths`]: where the socket lives.
//! * [`client`]: an async client for Rust agents.
//! * [`schema`]: the JSON Schema generator.

pub mod admin;
pub mod audit;
pub mod boxes;
pub mod client;
pub mod codec;
pub mod confinement;
pub mod control;
pub mod error;
pub mod jsonrpc;
pub mod mcp;
pub mod methods;
pub mod paths;
pub mod policy;
pub mod requests;
pub mod schema;
pub mod secret;

/// The protocol version spoken by this build. `hello` must carry exactly this
/// number; a change to the wire format that an old client cannot understand
/// bumps it. It is never derived from crate versions.
pub const PROTOCOL_VERSION: u32 = 1;

/// The largest frame either side accepts, in bytes, counting the terminating
/// newline. A peer that sends more gets `frame_too_large` and is disconnected.
pub const MAX_FRAME_LEN: usize = 64 * 1024;

pub use client::{Client, ClientError};
pub use error::{ErrorCode, RpcError};
pub use secret::{AccessToken, DelegationToken};
