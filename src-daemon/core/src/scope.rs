//! One set of OAuth scopes: sorted and deduplicated once, so that every
//! comparison (is this within the grant? what is missing?) is written once.

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

    /// Whether every one of ours is in `have`.
    pub fn within(&self, have: &[String]) -> bool {
        self.0.iter().all(|s| have.contains(s))
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

/// Those of `want` that `have` lacks, in `want`'s order.
pub fn missing<'a>(want: &'a [String], have: &[String]) -> Vec<&'a str> {
    want.iter()
        .filter(|s| !have.contains(s))
        .map(String::as_str)
        .collect()
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
}
