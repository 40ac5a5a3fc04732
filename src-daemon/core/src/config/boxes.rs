//! `[box]`: the profiles `valetkey run` starts agents under.
//!
//! Two are built in: `default` (the host's network) and `offline` (no
//! network). Both hide the usual credential stores (`~/.ssh`, `~/.aws`,
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
    /// The host's network namespace (abstract sockets are still scoped
    /// away by Landlock).
    #[default]
    Shared,
    /// A network namespace of its own: loopback only.
    None,
    /// Loopback only, and an HTTP(S) proxy on it that reaches the
    /// providers' hosts (with tokens written in) and the profile's
    /// `hosts` (tunnelled), and nothing else.
    Proxy,
}

impl Network {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Network::Shared => "shared",
            Network::None => "none",
            Network::Proxy => "proxy",
        }
    }

    /// Reads the config spelling.
    pub fn parse(s: &str) -> Result<Network, String> {
        match s {
            "shared" => Ok(Network::Shared),
            "none" => Ok(Network::None),
            "proxy" => Ok(Network::Proxy),
            _ => Err(format!("network {s:?}: write shared, none or proxy")),
        }
    }
}

/// One `[box.profiles.NAME]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Profile {
    /// `shared` (default), `none` or `proxy`.
    pub network: Network,
    /// With `proxy`: hosts (`name[:port]`) tunnelled untouched besides
    /// the providers' own.
    pub hosts: Vec<String>,
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
            for h in &p.hosts {
                super::proxy::host_port(h)
                    .map_err(|e| format!("[box.profiles.{name}] hosts: {e}"))?;
            }
            if !p.hosts.is_empty() && p.network != Network::Proxy {
                return Err(format!(
                    "[box.profiles.{name}]: hosts only applies with network = \"proxy\""
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
        assert_eq!(s.profile(None).expect("default").1.network, Network::Shared);
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
        let e = parse("[profiles.r]\nhosts = [\"pypi.org\"]\n")
            .validate()
            .expect_err("hosts without proxy");
        assert!(e.contains("only applies with network"), "{e}");
        let e = parse("[profiles.r]\nnetwork = \"proxy\"\nhosts = [\"10.0.0.1\"]\n")
            .validate()
            .expect_err("an address");
        assert!(e.contains("not a host name"), "{e}");
        parse("[profiles.r]\nnetwork = \"proxy\"\nhosts = [\"pypi.org\", \"x.test:8080\"]\n")
            .validate()
            .expect("proxy hosts");
        let e = parse("profile = \"gone\"\n")
            .validate()
            .expect_err("unknown default");
        assert!(e.contains("no box profile"), "{e}");
    }
}
