//! One set of OAuth scopes: sorted and deduplicated once, so that every
//! comparison (is this within the grant? what is missing?) is written once.
//!
//! A scope may be limited to one repository, `SCOPE@OWNER/REPO` (the
//! egress proxy's rules and GitHub's scoped tokens enforce it): `SCOPE`
//! covers it, so a grant, a login or a provider's `allowed_scopes` that
//! has `contents:read` covers `contents:read@octo/hello`, never the
//! other way round.

/// A sorted, deduplicated set of scopes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct ScopeSet(Vec<String>);

impl ScopeSet {
    /// The set of `scopes` (order and repeats do not matter).
    pub fn new(scopes: impl IntoIterator<Item = String>) -> Self {
        let mut v: Vec<String> = scopes.into_iter().collect();
        v.sort_unstable();
        v.dedup();
        ScopeSet(v)
    }

    /// The scopes, sorted.
    pub fn as_slice(&self) -> &[String] {
        &self.0
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Those of ours that `have` lacks, in order.
    pub fn missing_from<'a>(&'a self, have: &[String]) -> Vec<&'a str> {
        missing(&self.0, have)
    }

    /// Whether every one of ours is covered by `have`.
    pub fn within(&self, have: &[String]) -> bool {
        missing(&self.0, have).is_empty()
    }

    /// The scopes, as a `Vec`.
    pub fn into_vec(self) -> Vec<String> {
        self.0
    }
}

impl std::ops::Deref for ScopeSet {
    type Target = [String];

    fn deref(&self) -> &[String] {
        &self.0
    }
}

/// Those of `want` that nothing in `have` covers, in `want`'s order.
pub fn missing<'a>(want: &'a [String], have: &[String]) -> Vec<&'a str> {
    want.iter()
        .filter(|w| !have.iter().any(|h| covers(h, w)))
        .map(String::as_str)
        .collect()
}

/// The repository `s` is limited to (`SCOPE@OWNER/REPO`): the scope, the
/// owner and the repository.
pub fn limited(s: &str) -> Option<(&str, &str, &str)> {
    let (scope, repo) = s.rsplit_once('@')?;
    let (owner, name) = repo.split_once('/')?;
    let ok = |x: &str| !x.is_empty() && !x.contains(['/', '@']);
    (ok(scope) && ok(owner) && ok(name)).then_some((scope, owner, name))
}

/// The scope without its repository limit.
pub fn base(s: &str) -> &str {
    limited(s).map_or(s, |(scope, _, _)| scope)
}

/// Whether `have` covers `want`: the same scope, or `want` is `have`
/// limited to one repository.
pub fn covers(have: &str, want: &str) -> bool {
    have == want || limited(want).is_some_and(|(scope, _, _)| scope == have)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn sorted_once_and_compared_one_way() {
        let s = ScopeSet::new(v(&["b", "a", "b"]));
        assert_eq!(s.as_slice(), v(&["a", "b"]).as_slice());
        assert!(s.within(&v(&["c", "b", "a"])));
        assert!(!s.within(&v(&["a"])));
        assert_eq!(s.missing_from(&v(&["a"])), ["b"]);
        assert!(ScopeSet::new(v(&[])).is_empty());
        assert_eq!(missing(&v(&["x", "y"]), &v(&["y"])), ["x"]);
    }

    #[test]
    fn a_scope_covers_itself_limited_to_a_repository_and_not_the_reverse() {
        assert!(covers("contents:read", "contents:read@octo/hello"));
        assert!(covers(
            "contents:read@octo/hello",
            "contents:read@octo/hello"
        ));
        assert!(!covers("contents:read@octo/hello", "contents:read"));
        assert!(!covers(
            "contents:read@octo/hello",
            "contents:read@octo/other"
        ));
        assert!(!covers("contents:read", "contents:write@octo/hello"));
        for odd in ["a@b", "a@/r", "a@o/", "a@o/r/x", "@o/r", "user@example.com"] {
            assert!(limited(odd).is_none(), "{odd}");
            assert_eq!(base(odd), odd);
        }
        assert_eq!(limited("x@o/r"), Some(("x", "o", "r")));
        assert_eq!(base("x@o/r"), "x");
        let s = ScopeSet::new(v(&["contents:read@o/r", "metadata:read"]));
        assert!(s.within(&v(&["contents:read", "metadata:read"])));
        assert_eq!(
            s.missing_from(&v(&["contents:read@o/x"])),
            ["contents:read@o/r", "metadata:read"]
        );
    }
}
