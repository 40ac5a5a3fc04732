//! Strings that must never be printed: access tokens and delegation
//! tokens on the client side.
//!
//! `Debug` and `Display` redact it and the memory is zeroed on drop, so a
//! token cannot end up in a log line, a panic message or an error by
//! accident. Reading it takes an explicit call to [`AccessToken::expose`].

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

macro_rules! secret_string {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Wraps a value.
            pub fn new(value: String) -> Self {
                Self(value)
            }

            /// The value, for the one place that must send it on.
            pub fn expose(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, concat!(stringify!($name), "(<redacted, {} bytes>)"), self.0.len())
            }
        }

        impl Drop for $name {
            fn drop(&mut self) {
                zeroize::Zeroize::zeroize(&mut self.0);
            }
        }
    };
}

secret_string! {
    /// An OAuth access token handed to an agent. Redacted in `Debug`.
    AccessToken
}

secret_string! {
    /// A broker-signed delegation token (a compact JWS) that a sub-agent
    /// presents in `hello`. A bearer credential: redacted in `Debug`.
    DelegationToken
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
