//! `[providers.NAME.proxy]`: where a provider's API lives and how the
//! egress proxy writes a token into a request there, with the rules each
//! scope allows (see [`super::rules`]). The presets carry GitHub's;
//! a user's entries are merged over them key by key, so one rule list or
//! one host can be changed without copying the rest.
//!
//! ```toml
//! [providers.github.proxy]
//! hosts = { api = "api.github.com", git = "github.com" }
//! auth = { api = "bearer", git = "basic:x-access-token" }
//! [providers.github.proxy.rules]
//! "contents:read" = ["GET api /repos/{owner}/{repo}/contents/**"]
//! ```

use std::collections::BTreeMap;

use serde::Deserialize;

use super::rules::RuleSet;

/// `[providers.NAME.proxy]` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyFile {
    /// Host (`name` or `name:port`) by role.
    #[serde(default)]
    pub hosts: BTreeMap<String, String>,
    /// How a token is written into requests to a role's host: `bearer`
    /// (`Authorization: Bearer …`) or `basic:USER` (HTTP basic auth with
    /// the token as password, as git sends it).
    #[serde(default)]
    pub auth: BTreeMap<String, String>,
    /// Rule lines by scope.
    #[serde(default)]
    pub rules: BTreeMap<String, Vec<String>>,
    /// What each scope lets an agent do, in words, for the consent card
    /// (`"contents:read" = "read code"`).
    #[serde(default)]
    pub says: BTreeMap<String, String>,
    /// `"github"`: with the app's client secret in the keychain
    /// (`confidential = true`), narrow each token at GitHub itself
    /// (`token/scoped` on the `api` host) to the scopes' permissions and
    /// repositories.
    pub narrow: Option<String>,
}

impl ProxyFile {
    /// `self`'s entries over `base`'s.
    pub fn over(self, mut base: ProxyFile) -> ProxyFile {
        base.hosts.extend(self.hosts);
        base.auth.extend(self.auth);
        base.rules.extend(self.rules);
        base.says.extend(self.says);
        base.narrow = self.narrow.or(base.narrow);
        base
    }
}

/// How a token is written into a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InjectAs {
    /// `Authorization: Bearer TOKEN`.
    Bearer,
    /// `Authorization: Basic base64(USER:TOKEN)`.
    Basic(String),
}

/// One of a provider's hosts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyHost {
    /// Its role in the rules (`api`, `git`).
    pub role: String,
    /// The DNS name, lower case.
    pub host: String,
    /// The port (443 unless given).
    pub port: u16,
    /// How a token is written into requests to it.
    pub auth: InjectAs,
}

/// A provider's proxy settings, validated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProviderProxy {
    /// Its hosts.
    pub hosts: Vec<ProxyHost>,
    /// Its rules by scope.
    pub rules: RuleSet,
    /// Whether tokens may be narrowed at GitHub (`narrow = "github"`).
    pub narrow_github: bool,
    /// Each scope in words.
    pub says: BTreeMap<String, String>,
}

impl ProviderProxy {
    /// GitHub's `token/scoped` URL for `client_id` on the `api` host, if
    /// tokens are narrowed at GitHub.
    pub fn github_scoped_url(&self, client_id: &str) -> Option<String> {
        let api = self.hosts.iter().find(|h| h.role == "api")?;
        self.narrow_github.then(|| {
            let port = if api.port == 443 {
                String::new()
            } else {
                format!(":{}", api.port)
            };
            format!(
                "https://{}{port}/applications/{client_id}/token/scoped",
                api.host
            )
        })
    }

    /// The host `host:port` of this provider, if it is one.
    pub fn host(&self, host: &str, port: u16) -> Option<&ProxyHost> {
        self.hosts
            .iter()
            .find(|h| h.port == port && h.host.eq_ignore_ascii_case(host))
    }
}

/// Splits `name[:port]` (port 443 by default) and checks the name is a
/// DNS name.
pub fn host_port(s: &str) -> Result<(String, u16), String> {
    let (name, port) = match s.rsplit_once(':') {
        Some((n, p)) => (n, p.parse::<u16>().map_err(|_| format!("{s:?}: bad port"))?),
        None => (s, 443),
    };
    let dns = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
        && !name.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    if !dns || port == 0 {
        return Err(format!(
            "{s:?} is not a host name with an optional port (IP addresses are not accepted)"
        ));
    }
    Ok((name.to_ascii_lowercase(), port))
}

fn inject_as(s: &str) -> Result<InjectAs, String> {
    match s.split_once(':') {
        None if s == "bearer" => Ok(InjectAs::Bearer),
        Some(("basic", user)) if !user.is_empty() && !user.contains(':') => {
            Ok(InjectAs::Basic(user.into()))
        }
        _ => Err(format!("auth {s:?}: write \"bearer\" or \"basic:USER\"")),
    }
}

/// Validates `f`. Rules may name scopes the provider does not allow (a
/// preset covers more than one setup); a grant only ever holds allowed ones.
pub fn validate(f: ProxyFile) -> Result<ProviderProxy, String> {
    if f.hosts.is_empty() {
        return Err("proxy: hosts is required (role = \"host[:port]\")".into());
    }
    let mut hosts = vec![];
    for (role, h) in &f.hosts {
        let (host, port) = host_port(h).map_err(|e| format!("proxy hosts.{role}: {e}"))?;
        let auth = match f.auth.get(role) {
            Some(a) => inject_as(a).map_err(|e| format!("proxy {e}"))?,
            None => InjectAs::Bearer,
        };
        hosts.push(ProxyHost {
            role: role.clone(),
            host,
            port,
            auth,
        });
    }
    if let Some(r) = f.auth.keys().find(|r| !f.hosts.contains_key(*r)) {
        return Err(format!("proxy auth.{r}: no host has that role"));
    }
    let roles: Vec<&str> = f.hosts.keys().map(String::as_str).collect();
    let rules = RuleSet::parse(&f.rules, &roles).map_err(|e| format!("proxy {e}"))?;
    let narrow_github = match f.narrow.as_deref() {
        None => false,
        Some("github") if f.hosts.contains_key("api") => true,
        Some("github") => return Err("proxy narrow = \"github\" needs an api host".into()),
        Some(o) => {
            return Err(format!(
                "proxy narrow {o:?}: the only way known is \"github\""
            ))
        }
    };
    Ok(ProviderProxy {
        hosts,
        rules,
        narrow_github,
        says: f.says,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_ports_and_auth_are_checked() {
        assert_eq!(
            host_port("API.github.com").expect("ok"),
            ("api.github.com".into(), 443)
        );
        assert_eq!(
            host_port("localhost:8443").expect("ok"),
            ("localhost".into(), 8443)
        );
        for bad in ["", "127.0.0.1", "a..b", "x:0", "x:http", "a b"] {
            assert!(host_port(bad).is_err(), "{bad}");
        }
        assert_eq!(
            inject_as("basic:x-access-token").expect("ok"),
            InjectAs::Basic("x-access-token".into())
        );
        assert!(inject_as("digest").is_err());
        let f: ProxyFile =
            toml::from_str("hosts = { api = \"a.example\" }\nauth = { git = \"bearer\" }\n")
                .expect("toml");
        assert!(validate(f).expect_err("auth role").contains("auth.git"));
        let f: ProxyFile = toml::from_str("[rules]\nr = [\"GET api /x\"]\n").expect("toml");
        assert!(validate(f)
            .expect_err("no hosts")
            .contains("hosts is required"));
    }

    #[test]
    fn user_entries_win_key_by_key() {
        let base: ProxyFile = toml::from_str("hosts = { api = \"a.example\", git = \"g.example\" }\n[rules]\nr = [\"GET api /x\"]\nw = [\"PUT api /x\"]\n").expect("toml");
        let mine: ProxyFile =
            toml::from_str("hosts = { api = \"localhost:9443\" }\n[rules]\nr = [\"GET api /y\"]\n")
                .expect("toml");
        let p = validate(mine.over(base)).expect("valid");
        assert_eq!(p.host("localhost", 9443).expect("api").role, "api");
        assert_eq!(p.host("G.example", 443).expect("git").role, "git");
        assert!(p.host("a.example", 443).is_none(), "replaced");
        assert_eq!(p.rules.scopes().collect::<Vec<_>>(), vec!["r", "w"]);
    }
}
