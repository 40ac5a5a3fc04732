//! `[box]`: the profiles `valetkey run` starts agents under.
//!
//! Two are built in: `default` (network `filtered`: its own network
//! namespace, with the egress proxy reaching the providers and
//! tunnelling the package registries, git hosts and model APIs of
//! [`REGISTRIES`], and nothing on the host: no `localhost`) and `offline`
//! (no network). Both hide the usual credential stores (`~/.ssh`, `~/.aws`,
//! `~/.config/gh` …, see [`crate::boxes::profile`]); a profile adds paths
//! to hide, paths to keep writable and environment variables to pass in.
//! A profile of a built-in's name replaces it.
//!
//! ```toml
//! [box]
//! profile = "default"            # used without --profile
//!
//! [box.profiles.research]
//! network = "none"
//! hide = ["~/Documents/private"]
//! read_write = ["~/.cache/pip"]
//! env = ["LANG"]
//! sockets = ["/run/postgresql/.s.PGSQL.5432"]   # reachable from the box
//!
//! [box.profiles.coding]
//! network = "proxy"              # only through the egress proxy
//! hosts = ["pypi.org", "files.pythonhosted.org"]   # tunnelled untouched
//! ```

use std::collections::BTreeMap;

use serde::Deserialize;

/// How a box reaches the network.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Network {
    /// The host's network namespace, `localhost` and the LAN included
    /// (abstract sockets are still scoped away by Landlock): for tools
    /// that speak something other than HTTP(S) through a proxy, or need
    /// the user's local services.
    Shared,
    /// A network namespace of its own: loopback only.
    None,
    /// Loopback only, and an HTTP(S) proxy on it that reaches the
    /// providers' hosts (with tokens written in) and the profile's
    /// `hosts` (tunnelled), and nothing else. The box holds no token,
    /// ever: `token.get` is refused and `--env` gives placeholders.
    Proxy,
    /// The network of `proxy` (no `localhost`, no LAN; the providers and
    /// the profile's `hosts` through the proxy), with tokens handed out
    /// as with `shared`: `token.get` and `--env` give the agent its token
    /// (the default).
    #[default]
    Filtered,
}

/// What `hosts = ["registries"]` (the default) tunnels: the package
/// registries of pip, npm, cargo and Go, the public git hosts, and the
/// model APIs coding agents call, each over TLS end to end.
pub const REGISTRIES: &[&str] = &[
    "pypi.org",
    "files.pythonhosted.org",
    "registry.npmjs.org",
    "registry.yarnpkg.com",
    "crates.io",
    "index.crates.io",
    "static.crates.io",
    "proxy.golang.org",
    "sum.golang.org",
    "github.com",
    "codeload.github.com",
    "objects.githubusercontent.com",
    "gitlab.com",
    "codeberg.org",
    "api.anthropic.com",
    "api.openai.com",
];

impl Network {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Network::Shared => "shared",
            Network::None => "none",
            Network::Proxy => "proxy",
            Network::Filtered => "filtered",
        }
    }

    /// Whether the box's network is the egress proxy.
    pub fn proxied(self) -> bool {
        matches!(self, Network::Proxy | Network::Filtered)
    }

    /// Reads the config spelling.
    pub fn parse(s: &str) -> Result<Network, String> {
        match s {
            "shared" => Ok(Network::Shared),
            "none" => Ok(Network::None),
            "proxy" => Ok(Network::Proxy),
            "filtered" => Ok(Network::Filtered),
            _ => Err(format!(
                "network {s:?}: write filtered, proxy, shared or none"
            )),
        }
    }
}

/// One `[box.profiles.NAME]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Profile {
    /// `filtered` (default), `proxy`, `shared` or `none`.
    pub network: Network,
    /// With `filtered` or `proxy`: hosts (`name[:port]`) tunnelled untouched besides
    /// the providers' own; `"registries"` stands for [`REGISTRIES`].
    /// Absent: `["registries"]`.
    pub hosts: Option<Vec<String>>,
    /// Paths to hide besides the built-in list (`~/` is the home).
    pub hide: Vec<String>,
    /// Paths besides the working directory that stay writable.
    pub read_write: Vec<String>,
    /// Environment variables passed into the box besides the built-in set.
    pub env: Vec<String>,
    /// Unix sockets outside the box it may connect to (`~/` is the home;
    /// bound into the box where its `/tmp` or runtime directory would hide
    /// them). Every other socket outside the box is refused (`EACCES`).
    pub sockets: Vec<String>,
    /// Whether tools' caches (`~/.cache`, `~/.npm`, cargo's registry) are
    /// the profile's own writable directories (the default), or the
    /// user's, read-only (`caches = false`).
    pub caches: Option<bool>,
}

impl Profile {
    /// The hosts its proxy tunnels, as written (`"registries"` expanded).
    pub fn tunnels(&self) -> Vec<String> {
        let listed = self
            .hosts
            .clone()
            .unwrap_or_else(|| vec!["registries".into()]);
        listed
            .into_iter()
            .flat_map(|h| match h.as_str() {
                "registries" => REGISTRIES.iter().map(|r| r.to_string()).collect(),
                _ => vec![h],
            })
            .collect()
    }
}

/// `[box]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BoxSection {
    /// The profile used without `--profile` (default `default`).
    pub profile: Option<String>,
    /// Profiles by name.
    pub profiles: BTreeMap<String, Profile>,
}

/// The built-in profiles.
pub fn builtin(name: &str) -> Option<Profile> {
    match name {
        "default" => Some(Profile::default()),
        "offline" => Some(Profile {
            network: Network::None,
            ..Profile::default()
        }),
        _ => None,
    }
}

impl BoxSection {
    /// The profile `name` (else the default one), with its name.
    pub fn profile(&self, name: Option<&str>) -> Result<(String, Profile), String> {
        let name = name.or(self.profile.as_deref()).unwrap_or("default");
        self.profiles
            .get(name)
            .cloned()
            .or_else(|| builtin(name))
            .map(|p| (name.to_owned(), p))
            .ok_or_else(|| {
                let mut known: Vec<&str> = vec!["default", "offline"];
                known.extend(self.profiles.keys().map(String::as_str));
                known.sort();
                known.dedup();
                format!(
                    "no box profile {name:?}; known: {} (add [box.profiles.{name}] to config.toml)",
                    known.join(", ")
                )
            })
    }

    /// Checks every profile's paths and names (at config load).
    pub fn validate(&self) -> Result<(), String> {
        if let Some(p) = &self.profile {
            self.profile(Some(p))?;
        }
        for (name, p) in &self.profiles {
            let bad_name = name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if bad_name {
                return Err(format!(
                    "[box.profiles.{name}]: profile names may only use letters, digits, '-' and '_'"
                ));
            }
            for path in p.hide.iter().chain(&p.read_write).chain(&p.sockets) {
                if !(path.starts_with('/') || path.starts_with("~/")) {
                    return Err(format!(
                        "[box.profiles.{name}]: {path:?} must be absolute or start with ~/"
                    ));
                }
            }
            let hosts = p.hosts.as_deref().unwrap_or(&[]);
            for h in hosts.iter().filter(|h| *h != "registries") {
                super::proxy::host_port(h)
                    .map_err(|e| format!("[box.profiles.{name}] hosts: {e}"))?;
            }
            if !hosts.is_empty() && !p.network.proxied() {
                return Err(format!(
                    "[box.profiles.{name}]: hosts only applies with network = \"filtered\" or \"proxy\""
                ));
            }
            for var in &p.env {
                let ok = !var.is_empty()
                    && var.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                    && !crate::attest::LOADER_VARS.contains(&var.as_str());
                if !ok {
                    return Err(format!(
                        "[box.profiles.{name}] env: {var:?} is not a variable a box may take"
                    ));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(t: &str) -> BoxSection {
        toml::from_str(t).expect("parses")
    }

    #[test]
    fn builtins_and_overrides() {
        let s = BoxSection::default();
        let (_, default) = s.profile(None).expect("default");
        assert_eq!(default.network, Network::Filtered);
        let tunnels = default.tunnels();
        for r in [
            "pypi.org",
            "registry.npmjs.org",
            "index.crates.io",
            "github.com",
        ] {
            assert!(tunnels.iter().any(|t| t == r), "{r} in {tunnels:?}");
        }
        assert!(
            !tunnels
                .iter()
                .any(|t| t.starts_with("localhost") || t.starts_with("127.")),
            "the default box reaches nothing on the host: {tunnels:?}"
        );
        assert_eq!(
            s.profile(Some("offline")).expect("off").1.network,
            Network::None
        );
        let e = s.profile(Some("nope")).expect_err("unknown");
        assert!(e.contains("known: default, offline"), "{e}");
        let s = parse("profile = \"r\"\n[profiles.r]\nnetwork = \"none\"\nhide = [\"~/x\"]\n");
        let (name, p) = s.profile(None).expect("r");
        assert_eq!((name.as_str(), p.network), ("r", Network::None));
        s.validate().expect("valid");
    }

    #[test]
    fn refuses_relative_paths_loader_variables_and_unknown_fields() {
        let e = parse("[profiles.r]\nhide = [\"x\"]\n")
            .validate()
            .expect_err("rel");
        assert!(e.contains("must be absolute"), "{e}");
        let e = parse("[profiles.r]\nenv = [\"LD_PRELOAD\"]\n")
            .validate()
            .expect_err("ld");
        assert!(e.contains("LD_PRELOAD"), "{e}");
        assert!(toml::from_str::<BoxSection>("[profiles.r]\nnetwrk = \"none\"\n").is_err());
        let e = parse("[profiles.r]\nnetwork = \"shared\"\nhosts = [\"pypi.org\"]\n")
            .validate()
            .expect_err("hosts without proxy");
        assert!(e.contains("only applies with network"), "{e}");
        let e = parse("[profiles.r]\nnetwork = \"proxy\"\nhosts = [\"10.0.0.1\"]\n")
            .validate()
            .expect_err("an address");
        assert!(e.contains("not a host name"), "{e}");
        let own = parse("[profiles.r]\nhosts = [\"registries\", \"x.test:8080\"]\n");
        own.validate().expect("proxy hosts");
        let (_, r) = own.profile(Some("r")).expect("r");
        assert_eq!(
            r.network,
            Network::Filtered,
            "filtered unless it says otherwise"
        );
        assert_eq!(r.tunnels().last().map(String::as_str), Some("x.test:8080"));
        assert!(r.tunnels().iter().any(|t| t == "pypi.org"));
        let none = parse("[profiles.r]\nhosts = []\n");
        assert!(none.profile(Some("r")).expect("r").1.tunnels().is_empty());
        let e = parse("profile = \"gone\"\n")
            .validate()
            .expect_err("unknown default");
        assert!(e.contains("no box profile"), "{e}");
    }
}
