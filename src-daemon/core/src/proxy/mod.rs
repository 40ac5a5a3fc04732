//! The egress proxy's decisions, for boxes in `proxy` mode: which hosts a
//! box may reach, which requests its grants allow, and where a token goes
//! in. The daemon owns the sockets, TLS and HTTP (`valetkeyd`'s
//! `server::proxy`); this module sees a request as a few facts
//! ([`Target`](crate::config::rules::Target) and the `Authorization` value) and answers.
//!
//! A box in `proxy` mode has no network of its own. Its HTTP clients go
//! through a bridge in the box to the daemon, which:
//!
//! * refuses every host but the providers' API hosts and the profile's
//!   `hosts` ([`BoxProxy::door`]);
//! * tunnels the profile's hosts untouched;
//! * ends TLS for a provider's hosts with a leaf from the box's own CA
//!   ([`ca`]), checks each request against the rules of the scopes the
//!   box holds ([`crate::config::rules`]), and writes the real token into it: in place
//!   of a placeholder ([`placeholder`]), or where there is no credential
//!   at all and the box's agent holds a grant. The token is fetched by
//!   the same path as `token.get` ([`crate::access::proxied`]), so consent, policy and
//!   the audit trail all apply, and never enters the box.

pub mod ca;
pub mod canonical;
pub mod graphql;
pub mod mask;
pub mod placeholder;

use std::collections::HashMap;
use std::sync::Mutex;

use crate::config::proxy::ProxyHost;
use crate::config::rules::{RuleSet, Target};
use crate::config::Provider;
use std::sync::Arc;

/// What a placeholder stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placeholder {
    /// The provider.
    pub provider: String,
    /// The scopes asked for (and granted) when it was made.
    pub scopes: Vec<String>,
    /// When it was made on a one-time approval (no standing grant): the
    /// consent id and the scopes allowed, which cover the box's requests
    /// while it runs. With a grant, the grant covers them (and revoking
    /// it ends them).
    pub approval: Option<(String, Vec<String>)>,
}

/// One box's proxy: its CA, its tunnelled hosts, its placeholders and
/// the rules it has used.
#[derive(Debug)]
pub struct BoxProxy {
    /// The box's CA.
    pub ca: ca::BoxCa,
    /// Hosts tunnelled untouched (`host`, `port`).
    pub tunnels: Vec<(String, u16)>,
    placeholders: Mutex<HashMap<String, Placeholder>>,
    /// Allowed requests by provider and rule since the last record about
    /// each.
    used: Mutex<HashMap<String, HashMap<String, u64>>>,
    /// Providers the box has asked the user about on its own (a request
    /// with no credential that the provider turned away): once per box
    /// and provider, so a denial is not asked again and a box cannot
    /// raise a card per repository it names.
    asked: Mutex<std::collections::HashSet<String>>,
}

/// Where a `CONNECT` (or an absolute-form request) may go.
#[derive(Debug)]
pub enum Door {
    /// A provider's host: TLS ends at the proxy, requests are checked.
    Open {
        /// The provider.
        provider: Arc<Provider>,
        /// Which of its hosts.
        host: ProxyHost,
    },
    /// A host of the profile: bytes pass untouched.
    Tunnel,
    /// Anything else: refused, with why.
    Refuse(String),
}

/// The hosts of every provider the proxy knows (configured ones and MCP
/// servers: see [`crate::broker::Broker::providers`]).
pub fn provider_hosts(providers: &[Arc<Provider>]) -> Vec<String> {
    let mut hosts: Vec<String> = providers
        .iter()
        .filter_map(|p| p.proxy.as_ref())
        .flat_map(|x| x.hosts.iter().map(|h| h.host.clone()))
        .collect();
    hosts.sort();
    hosts.dedup();
    hosts
}

impl BoxProxy {
    /// The proxy of box `id`, with a CA for every host of `providers`
    /// and the profile's `tunnels`.
    pub fn new(
        id: &str,
        providers: &[Arc<Provider>],
        tunnels: Vec<(String, u16)>,
        now: i64,
    ) -> Result<BoxProxy, String> {
        Ok(BoxProxy {
            ca: ca::BoxCa::new(id, &provider_hosts(providers), now)?,
            tunnels,
            placeholders: Mutex::new(HashMap::new()),
            used: Mutex::new(HashMap::new()),
            asked: Mutex::new(Default::default()),
        })
    }

    /// Where `host:port` may go.
    pub fn door(&self, providers: &[Arc<Provider>], host: &str, port: u16) -> Door {
        for p in providers {
            if let Some(h) = p.proxy.as_ref().and_then(|x| x.host(host, port)) {
                return Door::Open {
                    provider: p.clone(),
                    host: h.clone(),
                };
            }
        }
        if self
            .tunnels
            .iter()
            .any(|(h, p)| *p == port && h.eq_ignore_ascii_case(host))
        {
            return Door::Tunnel;
        }
        Door::Refuse(format!(
            "this box may not reach {host}:{port}: only the providers' hosts and its profile's hosts ([box.profiles.NAME] hosts) go through the proxy"
        ))
    }

    /// Whether this box has not yet asked about `provider` on its own
    /// (and now has).
    pub fn first_ask(&self, provider: &str) -> bool {
        self.asked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(provider.to_owned())
    }

    /// A new placeholder for `p`.
    pub fn mint(&self, p: Placeholder) -> String {
        let value = placeholder::new();
        self.placeholders
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(value.clone(), p);
        value
    }

    /// What placeholder `value` stands for, if it is one of this box's.
    pub fn placeholder(&self, value: &str) -> Option<Placeholder> {
        self.placeholders
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(value)
            .cloned()
    }

    /// Widens placeholder `value` to `scopes` (a step-up the user
    /// allowed), with the one-time approval behind them if no grant is.
    pub fn widen(&self, value: &str, scopes: Vec<String>, approval: Option<(String, Vec<String>)>) {
        let mut m = self.placeholders.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = m.get_mut(value) {
            p.scopes = scopes;
            p.approval = approval;
        }
    }

    /// The box's placeholders for `provider`, in a stable order.
    pub fn placeholders_for(&self, provider: &str) -> Vec<Placeholder> {
        let m = self.placeholders.lock().unwrap_or_else(|e| e.into_inner());
        let mut v: Vec<Placeholder> = m
            .values()
            .filter(|p| p.provider == provider)
            .cloned()
            .collect();
        v.sort_by(|a, b| a.scopes.cmp(&b.scopes));
        v
    }

    /// Counts one allowed request under `rule` of `provider`: `true` the
    /// first time (it is recorded then; later ones are counted).
    pub fn first_use(&self, provider: &str, rule: &str) -> bool {
        let mut used = self.used.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = used.get_mut(provider).and_then(|m| m.get_mut(rule)) {
            *n += 1;
            return false;
        }
        used.entry(provider.to_owned())
            .or_default()
            .insert(rule.to_owned(), 0);
        true
    }

    /// The counts of repeat uses not yet recorded, reset to zero.
    pub fn take_counts(&self) -> Vec<(String, String, u64)> {
        let mut used = self.used.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = vec![];
        for (p, rules) in used.iter_mut() {
            for (r, n) in rules.iter_mut().filter(|(_, n)| **n > 0) {
                out.push((p.clone(), r.clone(), std::mem::take(n)));
            }
        }
        out
    }
}

/// What the box holds for a provider: a placeholder's scopes (and its
/// one-time approval), or its agent's grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    /// The scopes.
    pub scopes: Vec<String>,
    /// A one-time approval behind them, if no grant is.
    pub approval: Option<(String, Vec<String>)>,
}

impl From<Placeholder> for Held {
    fn from(p: Placeholder) -> Held {
        Held {
            scopes: p.scopes,
            approval: p.approval,
        }
    }
}

/// What to do with one request to a provider's host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Pass it on as it is.
    Forward,
    /// Write a token for what `held` holds into it; `rule` allowed it.
    Inject {
        /// What the token is fetched for.
        held: Held,
        /// The rule that allowed the request.
        rule: String,
    },
    /// Refuse it: nothing held allows it; these scopes would.
    Refuse {
        /// Scopes that would allow it (may be empty: no rule does).
        would: Vec<String>,
    },
}

/// Decides one request against what the box holds that may be written
/// into it (in order): the first with a rule that allows the request is
/// used. Holding nothing, the request is passed on as it is.
pub fn plan(rules: &RuleSet, t: &Target<'_>, held: &[Held]) -> Plan {
    if held.is_empty() {
        return Plan::Forward;
    }
    for h in held {
        if let Some(r) = rules.allows(&h.scopes, t) {
            return Plan::Inject {
                held: h.clone(),
                rule: r.text.clone(),
            };
        }
    }
    Plan::Refuse {
        would: rules.would_allow(t),
    }
}

/// What `scopes` let an agent do on `p`, in words (`read code in
/// octo/hello`), where the provider's proxy section says; for an MCP
/// server, `call the tools of NAME` (what its scopes allow is the
/// server's to say, and the policy's).
pub fn in_words(p: &Provider, scopes: &[String]) -> Vec<String> {
    if let Some(m) = &p.mcp {
        return vec![format!("call the tools of {}", m.name)];
    }
    let Some(x) = p.proxy.as_ref() else {
        return vec![];
    };
    let every = if x.rules.names_repositories() {
        " in every repository"
    } else {
        ""
    };
    scopes
        .iter()
        .filter_map(|s| match crate::scope::limited(s) {
            Some((b, o, r)) => x.says.get(b).map(|w| format!("{w} in {o}/{r}")),
            None => x.says.get(s.as_str()).map(|w| format!("{w}{every}")),
        })
        .collect()
}

/// The request as a card's headline says it, after "wants to": the
/// scopes in words and the provider (`read code in every repository on
/// GitHub`), an MCP server's words alone, or, where there are no words,
/// the provider and the scopes as they are (`use Corp with repo:read`).
pub fn action(p: &Provider, scopes: &[String]) -> String {
    let words = in_words(p, scopes);
    match (words.is_empty(), p.mcp.is_some()) {
        (true, _) => format!("use {} with {}", p.display_name, scopes.join(", ")),
        (false, true) => words.join(" and "),
        (false, false) => format!("{} on {}", words.join(" and "), p.display_name),
    }
}

/// What will hold a token for `scopes` on `p` to them (see
/// [`Limit`](valetkey_ipc::control::Limit)); `proxied`: the caller's
/// tokens are held by an egress proxy (a box in `proxy` mode, or an
/// agent that opened one).
pub fn limit(
    p: &Provider,
    scopes: &[String],
    proxied: bool,
) -> Option<valetkey_ipc::control::Limit> {
    use valetkey_ipc::control::Limit;
    let proxied = proxied && p.proxy.is_some();
    if p.narrows_at_github().is_some() && crate::oauth::github::scoped_body(scopes).is_some() {
        Some(Limit::GithubApp)
    } else if p.narrows_on_refresh {
        Some(Limit::Provider)
    } else if proxied {
        Some(Limit::ProxyRules)
    } else if p.allow_full_scope {
        Some(Limit::WholeLogin)
    } else {
        None
    }
}

#[cfg(test)]
mod tests;
