//! Placeholders: what a box in `proxy` mode gets in its environment
//! instead of a token (`valetkey run --env GH_TOKEN=github:…`).
//!
//! A placeholder is random, names nothing and is worth nothing outside
//! the box's proxy: only that proxy swaps it for a real token, and only
//! in the `Authorization` header of a request to its provider's hosts,
//! written as a bearer (or `token`) credential or as either half of HTTP
//! basic auth. Sent anywhere else, it arrives as it was.

use base64::Engine;

use crate::config::proxy::InjectAs;

/// Every placeholder starts so (and then 40 hex digits).
pub const PREFIX: &str = "vkp_";
const LEN: usize = PREFIX.len() + 40;

/// A new placeholder.
pub fn new() -> String {
    let mut b = [0u8; 20];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
    format!("{PREFIX}{}", crate::attest::hex(&b))
}

fn shaped(s: &str) -> bool {
    s.len() == LEN
        && s.starts_with(PREFIX)
        && s[PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// The credential of an `Authorization` value: the scheme, and the
/// bearer token or the basic `user:password`.
fn credential(value: &str) -> Option<(&str, std::borrow::Cow<'_, str>)> {
    let (scheme, rest) = value.trim().split_once(' ')?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("basic") {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .ok()?;
        return Some((scheme, String::from_utf8(raw).ok()?.into()));
    }
    Some((scheme, rest.into()))
}

/// The placeholder an `Authorization` value carries, if it carries one.
pub fn find(value: &str) -> Option<String> {
    let (scheme, cred) = credential(value)?;
    if scheme.eq_ignore_ascii_case("basic") {
        let (user, pass) = cred.split_once(':')?;
        return [pass, user]
            .into_iter()
            .find(|s| shaped(s))
            .map(str::to_owned);
    }
    shaped(&cred).then(|| cred.into_owned())
}

/// `value` with `token` where `placeholder` was (the scheme kept).
pub fn swap(value: &str, placeholder: &str, token: &str) -> Option<String> {
    let (scheme, cred) = credential(value)?;
    if scheme.eq_ignore_ascii_case("basic") {
        let (user, pass) = cred.split_once(':')?;
        let (user, pass) = match (user == placeholder, pass == placeholder) {
            (_, true) => (user, token),
            (true, false) => ("x-access-token", token),
            _ => return None,
        };
        let enc = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
        return Some(format!("{scheme} {enc}"));
    }
    (cred == placeholder).then(|| format!("{scheme} {token}"))
}

/// The `Authorization` value that carries `token` as `how` says.
pub fn inject(how: &InjectAs, token: &str) -> String {
    match how {
        InjectAs::Bearer => format!("Bearer {token}"),
        InjectAs::Basic(user) => format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{token}"))
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(s: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(s)
        )
    }

    #[test]
    fn placeholders_are_found_in_bearer_token_and_basic_credentials() {
        let p = new();
        assert!(shaped(&p) && p != new(), "random, shaped");
        assert_eq!(find(&format!("Bearer {p}")), Some(p.clone()));
        assert_eq!(find(&format!("token {p}")), Some(p.clone()), "gh's scheme");
        assert_eq!(
            find(&basic(&format!("x-access-token:{p}"))),
            Some(p.clone()),
            "git's"
        );
        assert_eq!(
            find(&basic(&format!("{p}:x-oauth-basic"))),
            Some(p.clone()),
            "token as user"
        );
        assert_eq!(find("Bearer ghu_real"), None);
        assert_eq!(find(&format!("Bearer {p}x")), None);
        assert_eq!(find(&format!("Bearer {}", p.to_uppercase())), None);
        assert_eq!(find("Basic !!!"), None);
    }

    #[test]
    fn a_swap_keeps_the_scheme_and_the_user() {
        let p = new();
        assert_eq!(
            swap(&format!("token {p}"), &p, "T").as_deref(),
            Some("token T")
        );
        assert_eq!(
            swap(&format!("Bearer {p}"), &p, "T").as_deref(),
            Some("Bearer T")
        );
        assert_eq!(
            swap(&basic(&format!("me:{p}")), &p, "T"),
            Some(basic("me:T"))
        );
        assert_eq!(
            swap(&basic(&format!("{p}:x")), &p, "T"),
            Some(basic("x-access-token:T"))
        );
        assert_eq!(swap("Bearer other", &p, "T"), None);
        assert_eq!(inject(&InjectAs::Bearer, "T"), "Bearer T");
        assert_eq!(
            inject(&InjectAs::Basic("x-access-token".into()), "T"),
            basic("x-access-token:T")
        );
    }
}
