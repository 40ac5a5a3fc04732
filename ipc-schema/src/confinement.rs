//! What the daemon knows about an agent in a box: the facts of the launch
//! (`valetkey run`). A leaf: the identity ([`crate::methods`]), the policy
//! input ([`crate::policy`]) and the box methods ([`crate::boxes`]) all
//! carry it.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What `valetkey run` launched in a box, as the daemon recorded it when
/// the box was opened (the daemon hashed the files itself).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub struct BoxFacts {
    /// The box's id (`b_` and 16 hex digits), unique for the daemon's life.
    pub id: String,
    /// The profile it runs under (`[box.profiles.NAME]` or a built-in).
    pub profile: String,
    /// `shared` (the host's network) or `none` (loopback only).
    pub network: String,
    /// The agent name the box is pinned to (`valetkey run --name`):
    /// `hello` with another name is refused. Omitted when not pinned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The command line as launched.
    pub argv: Vec<String>,
    /// The working directory, the one place the box may write.
    pub cwd: String,
    /// The program executed (after `PATH` lookup).
    pub program: FileFact,
    /// The script the program runs, when it is an interpreter (`python3
    /// x.py`, `node y.js`, `bash z.sh`) or the program is a `#!` script.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script: Option<FileFact>,
    /// SHA-256 (hex) over the program's hash, the interpreter options
    /// before the script, and the script's hash: the entry point that
    /// grants bind to. Never equal to any executable's own hash, so a
    /// boxed grant never serves an unboxed process.
    pub entry_sha256: String,
}

/// A file and its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub struct FileFact {
    /// Absolute path, in the launcher's (and the daemon's) namespace.
    pub path: String,
    /// Lowercase hex SHA-256 of its content when the box was opened.
    pub sha256: String,
}
