//! Requests the rules can match only one way.
//!
//! A rule like `GET api /files/read/**` is matched against the path the
//! box sent, and that very path goes upstream. If the path can mean
//! something else to the provider, the match says nothing: a server that
//! resolves `/files/read/../admin/wipe`, decodes `%2e%2e` or `%2f`, treats
//! `\` as `/`, drops `;params`, or collapses `//` runs a call no rule
//! allowed. So before any rule is matched the proxy refuses (`400`,
//! `request_malformed`) every path that is not already in the one form
//! all of them agree on (RFC 3986 §6.2.2: no dot segments, nothing encoded
//! that means structure). A rule that reads a query parameter matches
//! only when the parameter is there once ([`only_value`]: servers differ
//! on which of two wins). What passes is forwarded byte for byte as it
//! was checked.
//!
//! Hosts are made canonical where the proxy reads them (lower case, one
//! trailing dot dropped): see [`host`].

/// Why a path or query cannot be matched safely; `None` if it can.
pub fn refusal(path: &str) -> Option<String> {
    if !path.starts_with('/') {
        return Some(format!("the path {path:?} must start with /"));
    }
    if path.contains('\\') {
        return Some("the path holds a backslash, which some servers read as /".into());
    }
    let lower = path.to_ascii_lowercase();
    for (enc, what) in [
        ("%2e", "an encoded dot"),
        ("%2f", "an encoded slash"),
        ("%5c", "an encoded backslash"),
        ("%00", "an encoded NUL"),
        ("%25", "an encoded percent sign"),
    ] {
        if lower.contains(enc) {
            return Some(format!("the path holds {what} ({enc})"));
        }
    }
    let segments: Vec<&str> = path[1..].split('/').collect();
    for (i, seg) in segments.iter().enumerate() {
        // `;params` do not hide a dot segment (`..;/` is `..` to some).
        let bare = seg.split(';').next().unwrap_or("");
        if bare == "." || bare == ".." {
            return Some("the path holds a dot segment (. or ..)".into());
        }
        // A trailing `/` is one empty segment at the end: no rule's `*`
        // or `{name}` matches it, so it can only narrow a match.
        if seg.is_empty() && i + 1 != segments.len() {
            return Some("the path holds an empty segment (//)".into());
        }
    }
    None
}

/// The one value of parameter `key` in `query`, decoded as a server
/// reads it (`%65` is `e`, `+` a space); `None` if it is missing or
/// named more than once (servers differ on which one wins).
pub fn only_value(query: &str, key: &str) -> Option<String> {
    let mut found = url::form_urlencoded::parse(query.as_bytes()).filter(|(k, _)| k == key);
    match (found.next(), found.next()) {
        (Some((_, v)), None) => Some(v.into_owned()),
        _ => None,
    }
}

/// A host as the proxy matches it: lower case, one trailing dot dropped;
/// `None` for an empty name or more dots than one at the end.
pub fn host(h: &str) -> Option<String> {
    let h = h.strip_suffix('.').unwrap_or(h);
    if h.is_empty() || h.ends_with('.') {
        return None;
    }
    Some(h.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_paths_pass() {
        for ok in [
            "/",
            "/files/read/a.txt",
            "/repos/octo/hello/contents/README",
            "/octo/hello.git/info/refs",
            "/search%20term",
            "/a/.hidden/b",
            "/a/..b/c",
            "/v1/x;y",
            "/mcp/",
        ] {
            assert_eq!(refusal(ok), None, "{ok}");
        }
    }

    #[test]
    fn every_path_the_red_team_sent_is_refused() {
        for bad in [
            "/files/read/../../files/admin/wipe",
            "/files/read/%2e%2e/admin/wipe",
            "/files/read/%2E%2E/admin/wipe",
            "/files/read/..%2fadmin",
            "/files/read/..%2Fadmin",
            "/files/read/.%2e/admin",
            "/files/read/./x",
            "/files/read/..;/admin",
            "/files/read/..\\admin",
            "/files/read/%5cadmin",
            "/files//admin",
            "//files",
            "/files/read/%252e%252e/admin",
            "files/read",
            "/x%00y",
        ] {
            assert!(refusal(bad).is_some(), "{bad} passed");
        }
    }

    #[test]
    fn a_repeated_parameter_is_ambiguous_and_hosts_are_canonical() {
        let v = |q: &str| only_value(q, "service");
        assert_eq!(
            v("service=git-upload-pack&x=1").as_deref(),
            Some("git-upload-pack")
        );
        assert_eq!(v("service=git-upload-pack&service=git-receive-pack"), None);
        // Encoded, the second is the same name to the server.
        assert_eq!(
            v("service=git-upload-pack&servic%65=git-receive-pack"),
            None
        );
        assert_eq!(
            v("servic%65=git-upload-pack").as_deref(),
            Some("git-upload-pack")
        );
        assert_eq!(v(""), None);
        assert_eq!(host("API.GitHub.com.").as_deref(), Some("api.github.com"));
        assert_eq!(host("api.github.com").as_deref(), Some("api.github.com"));
        assert_eq!(host("api.github.com.."), None);
        assert_eq!(host("."), None);
    }
}
