//! The `WWW-Authenticate` challenges of an MCP server (RFC 9110 §11.6.1,
//! RFC 6750 §3): a 401 names the protected resource metadata
//! (`resource_metadata`, RFC 9728 §5.1) and the scopes it wants; a 403
//! with `error="insufficient_scope"` names the scopes a step-up needs.

use std::collections::BTreeMap;

/// One challenge: its scheme (lower case) and parameters (names in lower
/// case, values unquoted).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Challenge {
    /// `bearer`, `basic`, …
    pub scheme: String,
    /// Its auth-params.
    pub params: BTreeMap<String, String>,
}

impl Challenge {
    /// A parameter by (lower-case) name.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }

    /// The space-separated `scope` parameter, split.
    pub fn scopes(&self) -> Vec<String> {
        self.param("scope")
            .map(|s| s.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default()
    }
}

/// The `Bearer` challenge among `values` (each one `WWW-Authenticate`
/// header), if any.
pub fn bearer<'a>(values: impl IntoIterator<Item = &'a str>) -> Option<Challenge> {
    values
        .into_iter()
        .flat_map(parse)
        .find(|c| c.scheme == "bearer")
}

/// Every challenge in one header value. Malformed tails are dropped, not
/// guessed at.
pub fn parse(value: &str) -> Vec<Challenge> {
    let mut out: Vec<Challenge> = Vec::new();
    let mut s = Scanner {
        b: value.as_bytes(),
        i: 0,
    };
    // A bare token right after a scheme (no comma between) is its token68.
    let mut after_scheme = false;
    loop {
        let comma = s.skip(b" \t,");
        let Some(word) = s.token() else { break };
        s.skip(b" \t");
        let token68 = after_scheme && !comma;
        if s.peek() == Some(b'=') && !(token68 && s.is_token68_tail()) {
            // `name=value`: a parameter of the current challenge.
            s.i += 1;
            s.skip(b" \t");
            let Some(v) = s.value() else { break };
            if let Some(c) = out.last_mut() {
                c.params.insert(word.to_ascii_lowercase(), v);
            }
            after_scheme = false;
        } else if token68 {
            s.skip(b"=");
            after_scheme = false;
        } else {
            out.push(Challenge {
                scheme: word.to_ascii_lowercase(),
                params: BTreeMap::new(),
            });
            after_scheme = true;
        }
    }
    out
}

struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    /// Skips bytes of `set`; whether a comma was among them.
    fn skip(&mut self, set: &[u8]) -> bool {
        let mut comma = false;
        while let Some(c) = self.peek().filter(|c| set.contains(c)) {
            comma |= c == b',';
            self.i += 1;
        }
        comma
    }

    /// `token` (RFC 9110 tchar).
    fn token(&mut self) -> Option<String> {
        let start = self.i;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c))
        {
            self.i += 1;
        }
        (self.i > start).then(|| String::from_utf8_lossy(&self.b[start..self.i]).into_owned())
    }

    /// A `token68` ends with `=` padding and nothing but a comma after.
    fn is_token68_tail(&self) -> bool {
        let rest = &self.b[self.i..];
        let eqs = rest.iter().take_while(|&&c| c == b'=').count();
        let after = rest[eqs..].iter().find(|c| !b" \t".contains(c));
        after.is_none_or(|&c| c == b',')
    }

    /// A token or a quoted-string (with `\` escapes).
    fn value(&mut self) -> Option<String> {
        if self.peek() != Some(b'"') {
            return self.token();
        }
        self.i += 1;
        let mut v = Vec::new();
        while let Some(c) = self.peek() {
            self.i += 1;
            match c {
                b'"' => return Some(String::from_utf8_lossy(&v).into_owned()),
                b'\\' => {
                    v.push(self.peek()?);
                    self.i += 1;
                }
                _ => v.push(c),
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_mcp_sdk_challenge() {
        let c = bearer([r#"Bearer error="invalid_token", error_description="Missing Authorization header", resource_metadata="https://127.0.0.1:9/.well-known/oauth-protected-resource/mcp""#]).expect("bearer");
        assert_eq!(c.param("error"), Some("invalid_token"));
        assert_eq!(
            c.param("resource_metadata"),
            Some("https://127.0.0.1:9/.well-known/oauth-protected-resource/mcp")
        );
        assert!(c.scopes().is_empty());
    }

    #[test]
    fn finds_bearer_among_several_challenges_and_headers() {
        let c = bearer([
            r#"Basic realm="x""#,
            r#"Newauth realm="apps", type=1, title="Login to \"apps\"", Bearer scope="files:read files:write", error=insufficient_scope"#,
        ])
        .expect("bearer");
        assert_eq!(c.scopes(), vec!["files:read", "files:write"]);
        assert_eq!(c.param("error"), Some("insufficient_scope"));
        let all = parse(
            r#"Newauth realm="apps", type=1, title="Login to \"apps\"", Basic realm="simple""#,
        );
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].param("title"), Some(r#"Login to "apps""#));
        assert_eq!(all[1].param("realm"), Some("simple"));
    }

    #[test]
    fn names_are_case_insensitive_and_token68_is_not_a_parameter() {
        let c = bearer([r#"BEARER Scope="a""#]).expect("bearer");
        assert_eq!(c.scopes(), vec!["a"]);
        let t = parse("Negotiate abc123==, Bearer");
        assert_eq!(t.len(), 2, "{t:?}");
        assert_eq!(t[1].scheme, "bearer");
        assert!(bearer([r#"Basic realm="x""#]).is_none());
        // An unterminated quote loses the parameter, not the scheme.
        let u = bearer([r#"Bearer scope="a b"#]).expect("bearer");
        assert!(u.params.is_empty());
    }
}
