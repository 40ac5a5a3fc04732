//! A string that must never be printed: access tokens on the client side.
//!
//! `Debug` and `Display` redact it and the memory is zeroed on drop, so a
//! token cannot end up in a log line, a panic message or an error by
//! accident. Reading it takes an explicit call to [`AccessToken::expose`].

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// An OAuth access token handed to an agent. Redacted in `Debug`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct AccessToken(String);

impl AccessToken {
    /// Wraps a token value.
    pub fn new(value: String) -> Self {
        Self(value)
    }

    /// The token value, for putting in an `Authorization` header.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AccessToken(<redacted, {} bytes>)", self.0.len())
    }
}

impl Drop for AccessToken {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let t = AccessToken::new("gho_supersecretvalue".into());
        let shown = format!("{t:?}");
        assert!(!shown.contains("supersecret"), "{shown}");
        assert_eq!(t.expose(), "gho_supersecretvalue");
    }
}
