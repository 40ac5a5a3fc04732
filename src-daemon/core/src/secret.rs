//! Secrets in memory: refresh tokens, access tokens, client secrets.
//!
//! [`Secret`] zeroes its buffer on drop and prints as `<redacted>`, so a
//! token can reach a log line only by an explicit, greppable `.expose()`.

use zeroize::Zeroizing;

/// A secret string. `Debug`/`Display` never show the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    /// Wraps a value.
    pub fn new(value: String) -> Self {
        Self(Zeroizing::new(value))
    }

    /// The value. Every call site is a place a secret leaves this type.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_printed() {
        let s = Secret::new("rt-very-secret".into());
        assert!(!format!("{s:?} {s}").contains("very-secret"));
        assert_eq!(s.expose(), "rt-very-secret");
    }
}
