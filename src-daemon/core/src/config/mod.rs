//! `config.toml`: which providers exist and how to talk to them.
//!
//! Raw TOML is parsed into [`ConfigFile`] (every field optional), merged
//! with a preset from `presets.toml`, and validated into a typed
//! [`Provider`]. Everything downstream only ever sees the validated form,
//! so a bad config fails at start-up with a message naming the field.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use url::Url;

pub mod boxes;
pub mod proxy;
pub mod rules;
mod sections;

pub use boxes::BoxSection;
pub use sections::{AuditSection, LimitsSection, MonitorSection, OnAnomaly};

/// Why the config could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// TOML syntax or an unknown field.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message (with line and column).
        message: String,
    },
    /// A provider section is incomplete or contradictory.
    #[error("provider '{provider}' in {path}: {message}")]
    Provider {
        /// The file.
        path: PathBuf,
        /// The provider name.
        provider: String,
        /// What to fix.
        message: String,
    },
}

/// `config.toml` as written by the user.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// `[daemon]` settings.
    #[serde(default)]
    pub daemon: DaemonSection,
    /// `[consent]` settings.
    #[serde(default)]
    pub consent: ConsentSection,
    /// `[control]` settings.
    #[serde(default)]
    pub control: ControlSection,
    /// `[policy]` settings.
    #[serde(default)]
    pub policy: PolicySection,
    /// `[delegation]` settings.
    #[serde(default)]
    pub delegation: DelegationSection,
    /// `[audit]` settings.
    #[serde(default)]
    pub audit: AuditSection,
    /// `[monitor]` settings.
    #[serde(default)]
    pub monitor: MonitorSection,
    /// `[limits]` settings.
    #[serde(default)]
    pub limits: LimitsSection,
    /// `[box]`: the profiles of `valetkey run`.
    #[serde(rename = "box", default)]
    pub boxes: BoxSection,
    /// `[providers.NAME]` sections.
    #[serde(default)]
    pub providers: BTreeMap<String, ProviderFile>,
}

/// What happens to consents while the session is locked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnLock {
    /// Keep them pending (they still time out); decide after unlocking.
    #[default]
    Hold,
    /// Refuse them, and new ones, with `user_away`.
    Refuse,
}

impl OnLock {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            OnLock::Hold => "hold",
            OnLock::Refuse => "refuse",
        }
    }
}

/// Which bus carries logind's `Lock`/`Unlock` signals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Login1Bus {
    /// The system bus (the real logind).
    #[default]
    System,
    /// The session bus (tests run their own stand-in there).
    Session,
    /// Do not watch logind.
    None,
}

/// `[consent]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsentSection {
    /// How long an agent's `token.get` waits for a decision, e.g. "120s".
    #[serde(with = "humantime_serde_compat")]
    pub timeout: Duration,
    /// `hold` or `refuse` consents while the session is locked.
    pub on_lock: OnLock,
    /// Where to watch logind.
    pub login1_bus: Login1Bus,
    /// Send desktop notifications for consents and revocations.
    pub notify: bool,
    /// Offer Allow/Deny buttons in notifications (servers with actions only).
    pub notify_actions: bool,
    /// Distinct pending consents one agent may have at once.
    pub max_pending_per_agent: usize,
    /// New prompts one agent may cause per minute.
    pub max_prompts_per_minute: usize,
}

impl Default for ConsentSection {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(120),
            on_lock: OnLock::Hold,
            login1_bus: Login1Bus::System,
            notify: true,
            notify_actions: true,
            max_pending_per_agent: 3,
            max_prompts_per_minute: 10,
        }
    }
}

/// `[control]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ControlSection {
    /// Executables allowed on the control socket besides `valetkey`,
    /// `valetkey-tray` and `valetkey-window` installed next to `valetkeyd`.
    pub allowed_clients: Vec<PathBuf>,
}

/// Which Rego syntax the policy files use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegoVersion {
    /// Rego v1 (OPA 1.0): `if`, `contains` and `import rego.v1` semantics.
    #[default]
    V1,
    /// Rego v0, for older policies such as the seed article's.
    V0,
}

/// `[policy]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicySection {
    /// Where the `.rego` files are [default: `$XDG_CONFIG_HOME/valetkey/policies`].
    pub dir: Option<PathBuf>,
    /// `v1` (default) or `v0`.
    pub rego_version: RegoVersion,
    /// Providers only boxed agents (`valetkey run`) may get tokens for;
    /// an unboxed agent is refused with `confinement_required`.
    pub require_confinement: Vec<String>,
}

/// `[delegation]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DelegationSection {
    /// Deepest level a chain may reach, 1 to 3 (default 3).
    pub max_depth: u32,
    /// Longest lifetime of a delegation token, e.g. "8h" (default 24h, at most 30 days).
    #[serde(with = "long_duration")]
    pub max_ttl: Duration,
}

impl Default for DelegationSection {
    fn default() -> Self {
        Self {
            max_depth: 3,
            max_ttl: Duration::from_secs(24 * 3600),
        }
    }
}

/// Durations up to 30 days.
mod long_duration {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        let v = humantime::parse_duration(&s).map_err(serde::de::Error::custom)?;
        if v < Duration::from_secs(60) || v > Duration::from_secs(30 * 24 * 3600) {
            return Err(serde::de::Error::custom("must be between 1m and 30d"));
        }
        Ok(v)
    }
}

/// Durations written as "120s", "2m".
mod humantime_serde_compat {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        let v = humantime::parse_duration(&s).map_err(serde::de::Error::custom)?;
        if v < Duration::from_secs(1) || v > Duration::from_secs(3600) {
            return Err(serde::de::Error::custom("must be between 1s and 1h"));
        }
        Ok(v)
    }
}

/// `[daemon]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DaemonSection {
    /// Agent socket path (overridden by `--socket` and `VALETKEY_SOCKET`).
    pub socket: Option<PathBuf>,
}

/// `[providers.NAME]` (and a preset entry): every field optional until merged.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderFile {
    /// A preset name from `presets.toml`.
    pub preset: Option<String>,
    /// Name shown to people.
    pub display_name: Option<String>,
    /// Issuer URL; enables discovery (OIDC / RFC 8414).
    pub issuer: Option<Url>,
    /// Explicit endpoints; each wins over discovery.
    pub authorization_endpoint: Option<Url>,
    /// Token endpoint.
    pub token_endpoint: Option<Url>,
    /// RFC 7009 revocation endpoint.
    pub revocation_endpoint: Option<Url>,
    /// RFC 8628 device authorization endpoint.
    pub device_authorization_endpoint: Option<Url>,
    /// OAuth client id.
    pub client_id: Option<String>,
    /// `true` for a confidential client whose secret is in the keychain
    /// (store it with `valetkey provider set-secret NAME`).
    pub confidential: Option<bool>,
    /// Scopes agents may be granted.
    pub allowed_scopes: Option<Vec<String>>,
    /// Extra scopes asked for at login only (for example `offline_access`).
    pub login_scopes_extra: Option<Vec<String>>,
    /// RFC 8707 resource indicator sent at login and on refresh.
    pub resource: Option<String>,
    /// Whether the provider narrows scopes on refresh.
    pub narrows_on_refresh: Option<bool>,
    /// Accept a full-scope token where the provider cannot narrow.
    pub allow_full_scope: Option<bool>,
    /// Extra authorization-request parameters.
    pub extra_auth_params: Option<BTreeMap<String, String>>,
    /// A PEM file of extra CA certificates to trust for this provider.
    pub ca_file: Option<PathBuf>,
    /// Connections to a host name go to `IP:PORT` instead (as curl's
    /// `--connect-to`), whatever port was asked; the name TLS checks is
    /// still the host's.
    pub connect_to: Option<BTreeMap<String, String>>,
    /// Per-request timeout for the provider, in seconds (default 10).
    pub timeout_secs: Option<u64>,
    /// On one-click revocation, also revoke the agent's live access tokens
    /// at the provider (RFC 7009). Off by default: at many providers
    /// (Google, oidc-provider) revoking an access token also revokes the
    /// refresh token, which would end the login for every agent.
    pub revoke_agent_tokens: Option<bool>,
    /// How sensitive the provider's data is by default: `public`,
    /// `internal` (default) or `confidential`. Policies see it as
    /// `input.resource.sensitivity`.
    pub sensitivity: Option<valetkey_ipc::policy::Classification>,
    /// Free text about the provider's behaviour.
    pub notes: Option<String>,
    /// `[providers.NAME.proxy]`: its hosts and request rules for the
    /// egress proxy of boxes in `proxy` mode.
    pub proxy: Option<proxy::ProxyFile>,
}

impl ProviderFile {
    /// Fields set in `self` win over `base` (the proxy section key by key).
    fn over(self, base: ProviderFile) -> ProviderFile {
        let proxy = match (self.proxy, base.proxy) {
            (Some(mine), Some(base)) => Some(mine.over(base)),
            (mine, base) => mine.or(base),
        };
        macro_rules! pick { ($($f:ident),*) => { ProviderFile { proxy, $($f: self.$f.or(base.$f),)* } } }
        pick!(
            preset,
            display_name,
            issuer,
            authorization_endpoint,
            token_endpoint,
            revocation_endpoint,
            device_authorization_endpoint,
            client_id,
            confidential,
            allowed_scopes,
            login_scopes_extra,
            resource,
            narrows_on_refresh,
            allow_full_scope,
            extra_auth_params,
            ca_file,
            connect_to,
            timeout_secs,
            revoke_agent_tokens,
            sensitivity,
            notes
        )
    }
}

/// A validated provider.
#[derive(Debug, Clone)]
pub struct Provider {
    /// Its name in the config (what agents pass to `token.get`).
    pub name: String,
    /// Name shown to people.
    pub display_name: String,
    /// Issuer, when discovery is used or known.
    pub issuer: Option<Url>,
    /// Endpoints given explicitly (discovery fills the rest at run time).
    pub endpoints: Endpoints,
    /// OAuth client id.
    pub client_id: String,
    /// Whether a client secret is kept in the keychain.
    pub confidential: bool,
    /// Scopes agents may be granted.
    pub allowed_scopes: Vec<String>,
    /// Scopes asked for at login: allowed plus extras.
    pub login_scopes: Vec<String>,
    /// RFC 8707 resource.
    pub resource: Option<String>,
    /// Whether narrower refreshes work.
    pub narrows_on_refresh: bool,
    /// Whether a full-scope token may stand in for a narrower one.
    pub allow_full_scope: bool,
    /// Extra authorization parameters.
    pub extra_auth_params: BTreeMap<String, String>,
    /// Extra CA file.
    pub ca_file: Option<PathBuf>,
    /// Where connections to a host name (lower case) go instead.
    pub connect_to: BTreeMap<String, std::net::SocketAddr>,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Revoke an agent's access tokens at the provider on revocation.
    pub revoke_agent_tokens: bool,
    /// Default data sensitivity.
    pub sensitivity: valetkey_ipc::policy::Classification,
    /// Hosts and request rules for the egress proxy, if it knows them.
    pub proxy: Option<std::sync::Arc<proxy::ProviderProxy>>,
    /// Under what its refresh token and client secret are kept in the
    /// keychain: the name for a configured provider; the authorization
    /// server's issuer and the resource for an MCP server (so a server
    /// added again under another name finds no stale login).
    pub keychain_key: String,
    /// What discovery found, when this provider is a remote MCP server.
    pub mcp: Option<std::sync::Arc<valetkey_ipc::control::McpServer>>,
}

/// Reads `connect_to`: a host name to `IP:PORT`.
fn connect_to(
    m: BTreeMap<String, String>,
) -> Result<BTreeMap<String, std::net::SocketAddr>, String> {
    m.into_iter()
        .map(|(from, to)| {
            let (host, _) = proxy::host_port(&from).map_err(|e| format!("connect_to: {e}"))?;
            if from.contains(':') {
                return Err(format!("connect_to {from:?}: name the host without a port"));
            }
            let addr = to.parse().map_err(|_| {
                format!(
                    "connect_to {from:?}: {to:?} is not an IP address and port (127.0.0.1:8443)"
                )
            })?;
            Ok((host, addr))
        })
        .collect()
}

impl Provider {
    /// Where GitHub narrows this provider's tokens (`token/scoped`), when
    /// it may: `narrow = "github"` and the app's secret in the keychain.
    pub fn narrows_at_github(&self) -> Option<String> {
        let p = self.proxy.as_ref()?;
        if !self.confidential {
            return None;
        }
        p.github_scoped_url(&self.client_id)
    }
}

/// OAuth endpoints; `None` means "ask discovery".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Endpoints {
    /// Authorization endpoint.
    pub authorization: Option<Url>,
    /// Token endpoint.
    pub token: Option<Url>,
    /// RFC 7009 revocation endpoint.
    pub revocation: Option<Url>,
    /// RFC 8628 device authorization endpoint.
    pub device_authorization: Option<Url>,
}

/// The whole validated config.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// Where it was read from.
    pub path: PathBuf,
    /// Agent socket from `[daemon] socket`, if set.
    pub socket: Option<PathBuf>,
    /// `[consent]`.
    pub consent: ConsentSection,
    /// `[control]`.
    pub control: ControlSection,
    /// `[policy]`.
    pub policy: PolicySection,
    /// `[delegation]`.
    pub delegation: DelegationSection,
    /// `[audit]`.
    pub audit: AuditSection,
    /// `[monitor]`.
    pub monitor: MonitorSection,
    /// `[limits]`.
    pub limits: LimitsSection,
    /// `[box]`.
    pub boxes: BoxSection,
    /// Providers by name.
    pub providers: BTreeMap<String, std::sync::Arc<Provider>>,
}

/// The built-in presets.
pub fn presets() -> BTreeMap<String, ProviderFile> {
    // The file is part of the binary and covered by a test, so this cannot fail at run time.
    toml::from_str(include_str!("presets.toml")).unwrap_or_default()
}

impl Config {
    /// Reads `path`; a missing file is an empty config.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path.to_owned(),
                    source,
                })
            }
        };
        Self::parse(path, &text)
    }

    /// Parses and validates config text.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let file: ConfigFile = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        let presets = presets();
        let mut providers = BTreeMap::new();
        for (name, raw) in file.providers {
            let err = |message: String| ConfigError::Provider {
                path: path.to_owned(),
                provider: name.clone(),
                message,
            };
            let merged = match raw.preset.as_deref() {
                None => raw,
                Some(p) => {
                    let base = presets.get(p).cloned().ok_or_else(|| {
                        err(format!(
                            "unknown preset '{p}'; known presets: {}",
                            presets.keys().cloned().collect::<Vec<_>>().join(", ")
                        ))
                    })?;
                    raw.over(base)
                }
            };
            providers.insert(
                name.clone(),
                std::sync::Arc::new(validate(&name, merged).map_err(err)?),
            );
        }
        if !(1..=3).contains(&file.delegation.max_depth) {
            return Err(ConfigError::Parse {
                path: path.to_owned(),
                message: format!(
                    "[delegation] max_depth must be 1 to 3, got {}",
                    file.delegation.max_depth
                ),
            });
        }
        if file.limits.max_connections < 2
            || file.limits.control_connections < 2
            || file.limits.box_connections < 2
            || file.limits.box_proxy_connections < 2
            || file.limits.requests_per_second == 0
            || file.limits.burst == 0
            || file.audit.checkpoint_every == 0
        {
            return Err(ConfigError::Parse {
                path: path.to_owned(),
                message: "[limits] max_connections, control_connections, box_connections and box_proxy_connections must be at least 2, requests_per_second, burst and [audit] checkpoint_every at least 1".into(),
            });
        }
        file.boxes
            .validate()
            .map_err(|message| ConfigError::Parse {
                path: path.to_owned(),
                message,
            })?;
        if let Some(p) = file
            .policy
            .require_confinement
            .iter()
            .find(|p| !providers.contains_key(*p))
        {
            return Err(ConfigError::Parse {
                path: path.to_owned(),
                message: format!(
                    "[policy] require_confinement names {p:?}, which is not a configured provider"
                ),
            });
        }
        Ok(Config {
            path: path.to_owned(),
            socket: file.daemon.socket,
            consent: file.consent,
            control: file.control,
            policy: file.policy,
            delegation: file.delegation,
            audit: file.audit,
            monitor: file.monitor,
            limits: file.limits,
            boxes: file.boxes,
            providers,
        })
    }

    /// A provider by name, or an error message listing the known ones.
    pub fn provider(&self, name: &str) -> Option<&Provider> {
        self.providers.get(name).map(|p| &**p)
    }
}

fn check_https(field: &str, url: &Option<Url>) -> Result<(), String> {
    match url {
        Some(u) if u.scheme() != "https" => Err(format!("{field} must be an https URL, got {u}")),
        _ => Ok(()),
    }
}

fn validate(name: &str, f: ProviderFile) -> Result<Provider, String> {
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err("provider names may only use letters, digits, '-' and '_'".into());
    }
    let client_id = f
        .client_id
        .filter(|c| !c.is_empty())
        .ok_or("client_id is required (the OAuth client registered for Valet Key)")?;
    let allowed_scopes = f
        .allowed_scopes
        .filter(|s| !s.is_empty())
        .ok_or("allowed_scopes is required: list the scopes agents may be granted")?;
    valetkey_ipc::methods::validate_scopes(&allowed_scopes)
        .map_err(|e| format!("allowed_scopes: {e}"))?;
    let endpoints = Endpoints {
        authorization: f.authorization_endpoint,
        token: f.token_endpoint,
        revocation: f.revocation_endpoint,
        device_authorization: f.device_authorization_endpoint,
    };
    if f.issuer.is_none() && endpoints.token.is_none() {
        return Err("set either issuer (for discovery) or token_endpoint".into());
    }
    check_https("issuer", &f.issuer)?;
    check_https("authorization_endpoint", &endpoints.authorization)?;
    check_https("token_endpoint", &endpoints.token)?;
    check_https("revocation_endpoint", &endpoints.revocation)?;
    check_https(
        "device_authorization_endpoint",
        &endpoints.device_authorization,
    )?;
    let mut login_scopes = allowed_scopes.clone();
    for s in f.login_scopes_extra.unwrap_or_default() {
        if !login_scopes.contains(&s) {
            login_scopes.push(s);
        }
    }
    Ok(Provider {
        name: name.to_owned(),
        display_name: f.display_name.unwrap_or_else(|| name.to_owned()),
        issuer: f.issuer,
        endpoints,
        client_id,
        confidential: f.confidential.unwrap_or(false),
        allowed_scopes,
        login_scopes,
        resource: f.resource,
        narrows_on_refresh: f.narrows_on_refresh.unwrap_or(false),
        allow_full_scope: f.allow_full_scope.unwrap_or(false),
        extra_auth_params: f.extra_auth_params.unwrap_or_default(),
        ca_file: f.ca_file,
        connect_to: connect_to(f.connect_to.unwrap_or_default())?,
        timeout: Duration::from_secs(f.timeout_secs.unwrap_or(10).clamp(1, 300)),
        revoke_agent_tokens: f.revoke_agent_tokens.unwrap_or(false),
        sensitivity: f.sensitivity.unwrap_or_default(),
        proxy: f
            .proxy
            .map(proxy::validate)
            .transpose()?
            .map(std::sync::Arc::new),
        keychain_key: name.to_owned(),
        mcp: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("config.toml"), text)
    }

    /// Every GitHub scope the README and docs/AGENTS.md show
    /// (`--env VAR=github:SCOPE[@REPO]`, `token("github", [...])`) is one
    /// the github preset's rules know: AGENTS.md showed `repo:read`,
    /// which is none of them.
    #[test]
    fn the_docs_github_examples_ask_for_scopes_the_preset_has() {
        let preset = presets().remove("github").expect("github");
        let known = preset.proxy.expect("proxy").rules;
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let mut shown = Vec::new();
        for doc in ["README.md", "docs/AGENTS.md"] {
            let text = std::fs::read_to_string(root.join(doc)).expect("doc");
            for (i, _) in text.match_indices("=github:") {
                let rest = &text[i + "=github:".len()..];
                let end = rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
                    .unwrap_or(rest.len());
                shown.push((doc, rest[..end].to_owned()));
            }
            for q in ["\"github\", [\"", "'github', ['"] {
                for (i, _) in text.match_indices(q) {
                    let rest = &text[i + q.len()..];
                    let end = rest.find(['"', '\'']).unwrap_or(0);
                    shown.push((doc, rest[..end].to_owned()));
                }
            }
        }
        assert!(shown.len() >= 4, "the examples were found: {shown:?}");
        for (doc, scope) in &shown {
            assert!(
                known.contains_key(scope),
                "{doc} shows github:{scope}, which the preset does not have"
            );
        }
    }

    #[test]
    fn connect_to_takes_a_host_to_an_address_and_says_what_is_wrong() {
        let base = "[providers.g]\npreset = \"github\"\nclient_id = \"x\"\nallowed_scopes = [\"contents:read\"]\n";
        let c = parse(&format!(
            "{base}connect_to = {{ \"API.github.com\" = \"127.0.0.1:8443\" }}\n"
        ))
        .expect("parses");
        let p = c.provider("g").expect("g");
        assert_eq!(
            p.connect_to.get("api.github.com"),
            Some(&"127.0.0.1:8443".parse().expect("addr"))
        );
        for (bad, says) in [
            (
                "{ \"api.github.com\" = \"localhost:8443\" }",
                "not an IP address and port",
            ),
            (
                "{ \"api.github.com:443\" = \"127.0.0.1:1\" }",
                "without a port",
            ),
            ("{ \"10.0.0.1\" = \"127.0.0.1:1\" }", "not a host name"),
        ] {
            let e = parse(&format!("{base}connect_to = {bad}\n")).expect_err(bad);
            assert!(e.to_string().contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn every_preset_parses_and_validates_with_a_client_id() {
        let presets = presets();
        for name in ["github", "google", "microsoft", "gitlab", "slack"] {
            assert!(presets.contains_key(name), "missing preset {name}");
            let cfg = parse(&format!(
                "[providers.p]\npreset = \"{name}\"\nclient_id = \"x\"\nallowed_scopes = [\"a\"]\n"
            ))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
            let p = &cfg.providers["p"];
            assert!(p.issuer.is_some() || p.endpoints.token.is_some());
        }
        assert!(presets["google"].narrows_on_refresh == Some(true));
        assert!(presets["github"].narrows_on_refresh == Some(false));
    }

    #[test]
    fn user_fields_win_over_the_preset() {
        let cfg = parse(
            "[providers.gh]\npreset = \"github\"\nclient_id = \"abc\"\nallowed_scopes = [\"repo\"]\nnarrows_on_refresh = true\n",
        )
        .expect("valid");
        assert!(cfg.providers["gh"].narrows_on_refresh);
        assert_eq!(cfg.providers["gh"].display_name, "GitHub");
    }

    #[test]
    fn errors_name_the_field_to_fix() {
        let e = parse("[providers.x]\nissuer = \"https://a\"\nallowed_scopes=[\"a\"]\n")
            .expect_err("no client id");
        assert!(e.to_string().contains("client_id is required"), "{e}");
        let e = parse("[providers.x]\nclient_id=\"c\"\nallowed_scopes=[\"a\"]\ntoken_endpoint=\"http://a/t\"\n").expect_err("http");
        assert!(e.to_string().contains("https"), "{e}");
        let e = parse("[providers.x]\npreset=\"nope\"\n").expect_err("preset");
        assert!(e.to_string().contains("known presets"), "{e}");
        let e = parse("[providers.x]\nclientid=\"c\"\n").expect_err("typo");
        assert!(e.to_string().contains("unknown field"), "{e}");
    }

    #[test]
    fn delegation_depth_is_capped_at_three() {
        let e = parse("[delegation]\nmax_depth = 4\n").expect_err("too deep");
        assert!(e.to_string().contains("1 to 3"), "{e}");
        let c = parse(
            "[delegation]\nmax_depth = 2\nmax_ttl = \"8h\"\n[policy]\nrego_version = \"v0\"\n",
        )
        .expect("ok");
        assert_eq!(c.delegation.max_depth, 2);
        assert_eq!(c.delegation.max_ttl, Duration::from_secs(8 * 3600));
        assert_eq!(c.policy.rego_version, RegoVersion::V0);
    }

    #[test]
    fn login_scopes_add_extras_once() {
        let cfg = parse("[providers.x]\nissuer=\"https://i\"\nclient_id=\"c\"\nallowed_scopes=[\"a\",\"b\"]\nlogin_scopes_extra=[\"offline_access\",\"a\"]\n").expect("ok");
        assert_eq!(
            cfg.providers["x"].login_scopes,
            vec!["a", "b", "offline_access"]
        );
    }
}
