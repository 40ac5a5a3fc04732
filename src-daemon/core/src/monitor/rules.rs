//! The anomaly rules, as pure functions of one agent's counters and the
//! event just seen, so each can be tested with made-up clocks. The rules
//! follow the seed article's "Monitoring Agent Identity Behavior" list:
//!
//! | rule | fires when |
//! |---|---|
//! | `rate_spike` | this minute's requests exceed `spike_factor` × the agent's own per-minute baseline (and `spike_min`), after 10 minutes of history |
//! | `first_use` | a token is issued for a provider or scope the agent never used before (not on its very first token) |
//! | `cross_user` | a request is about data of a user other than the one the agent serves |
//! | `velocity` | write, delete or admin actions this minute exceed `velocity_per_minute` |
//! | `error_rate` | refusals in 5 minutes reach `errors_min` and `error_ratio` of its requests |
//! | `deep_delegation` | a delegation chain reaches `delegation_depth` |
//!
//! A rule that fired stays quiet for that agent for `cooldown` (except
//! `first_use`, which fires once per new scope anyway).

use std::collections::{HashMap, HashSet, VecDeque};

use crate::config::MonitorSection;

/// Minutes of history kept per agent.
const WINDOW: usize = 60;
/// Completed minutes of history before `rate_spike` applies.
const WARMUP: i64 = 10;

/// A rule's stable name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rule {
    /// Requests far above the agent's own baseline.
    RateSpike,
    /// A provider or scope never used before.
    FirstUse,
    /// Data of another user.
    CrossUser,
    /// Too many write/delete/admin actions per minute.
    Velocity,
    /// Many refusals.
    ErrorRate,
    /// A deep delegation chain.
    DeepDelegation,
}

impl Rule {
    /// The name used in audit records, events and config.
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::RateSpike => "rate_spike",
            Rule::FirstUse => "first_use",
            Rule::CrossUser => "cross_user",
            Rule::Velocity => "velocity",
            Rule::ErrorRate => "error_rate",
            Rule::DeepDelegation => "deep_delegation",
        }
    }
}

/// A fired rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// Which.
    pub rule: Rule,
    /// What was seen, for a person.
    pub detail: String,
}

/// One event as the rules see it.
#[derive(Debug, Clone, Default)]
pub struct Seen<'a> {
    /// Unix seconds.
    pub now: i64,
    /// The audit kind.
    pub kind: &'a str,
    /// Provider, if any.
    pub provider: Option<&'a str>,
    /// Scopes the token carried (issued) or were asked for.
    pub scopes: &'a [String],
    /// Whether it was issued / accepted.
    pub ok: bool,
    /// Refused (counts toward the error rate).
    pub refused: bool,
    /// `read`, `write`, `delete`, `admin`.
    pub action: Option<&'a str>,
    /// Whose data.
    pub resource_owner: Option<&'a str>,
    /// The user the agent serves (from the chain).
    pub user: &'a str,
    /// Delegation depth (0 for an agent's own request).
    pub depth: u32,
    /// A repeat hand-out of a token already issued (and so already seen
    /// by `first_use`) on the same connection.
    pub repeat: bool,
}

#[derive(Debug, Clone, Copy, Default)]
struct Minute {
    at: i64,
    requests: u32,
    errors: u32,
    writes: u32,
}

/// One agent's counters.
#[derive(Debug, Default)]
pub struct AgentStats {
    /// Requests seen since the daemon started.
    pub requests: u64,
    /// Refusals among them.
    pub refusals: u64,
    /// Rules fired.
    pub anomalies: u64,
    /// The last one: when and which.
    pub last_anomaly: Option<(i64, String)>,
    minutes: VecDeque<Minute>,
    first_minute: Option<i64>,
    known: HashSet<String>,
    /// Whether `known` was loaded from the audit trail.
    pub loaded: bool,
    fired: HashMap<Rule, i64>,
}

/// The records that are an agent's requests. Of the egress proxy's, every
/// refusal is one, and the first allowed request per box and rule (later
/// ones are counted into one record when the box closes).
fn counts(kind: &str) -> bool {
    matches!(
        kind,
        "token.get" | "delegation.create" | "hello" | "delegation.use" | "proxy.request"
    )
}

impl AgentStats {
    /// Marks `provider` and its scopes as used before (from history).
    pub fn remember(&mut self, provider: &str, scopes: &[String]) {
        self.known.insert(provider.to_owned());
        for s in scopes {
            self.known.insert(format!("{provider} {s}"));
        }
    }

    /// Scopes and providers used so far.
    pub fn known(&self) -> usize {
        self.known.len()
    }

    fn minute(&mut self, now: i64) -> &mut Minute {
        let at = now.div_euclid(60);
        self.first_minute.get_or_insert(at);
        if self.minutes.back().is_none_or(|m| m.at != at) {
            self.minutes.push_back(Minute {
                at,
                ..Default::default()
            });
            while self.minutes.len() > WINDOW {
                self.minutes.pop_front();
            }
        }
        self.minutes.back_mut().expect("just pushed")
    }

    /// Requests this minute (at `now`).
    pub fn last_minute(&self, now: i64) -> u32 {
        let at = now.div_euclid(60);
        self.minutes
            .back()
            .filter(|m| m.at == at)
            .map_or(0, |m| m.requests)
    }

    /// The average requests per completed minute since the agent was first
    /// seen (at most the last hour, idle minutes count as zero), and how
    /// many minutes that covers.
    pub fn baseline(&self, now: i64) -> (f64, i64) {
        let at = now.div_euclid(60);
        let Some(first) = self.first_minute else {
            return (0.0, 0);
        };
        let span = (at - first).min(WINDOW as i64);
        if span <= 0 {
            return (0.0, 0);
        }
        let sum: u64 = self
            .minutes
            .iter()
            .filter(|m| m.at < at && m.at >= at - span)
            .map(|m| m.requests as u64)
            .sum();
        (sum as f64 / span as f64, span)
    }

    /// Writes this minute and errors / requests in the last five.
    pub fn recent(&self, now: i64) -> (u32, u32, u32) {
        let at = now.div_euclid(60);
        let writes = self
            .minutes
            .back()
            .filter(|m| m.at == at)
            .map_or(0, |m| m.writes);
        let (mut errors, mut requests) = (0, 0);
        for m in self.minutes.iter().filter(|m| m.at > at - 5) {
            errors += m.errors;
            requests += m.requests;
        }
        (writes, errors, requests)
    }

    fn cooled(&mut self, rule: Rule, now: i64, t: &MonitorSection) -> bool {
        let ok = self
            .fired
            .get(&rule)
            .is_none_or(|at| now - at >= t.cooldown.as_secs() as i64);
        if ok {
            self.fired.insert(rule, now);
        }
        ok
    }

    /// Counts `s` and returns the rules it makes fire.
    pub fn observe(&mut self, s: &Seen<'_>, t: &MonitorSection) -> Vec<Finding> {
        let mut out = Vec::new();
        let (baseline, span) = self.baseline(s.now);
        if counts(s.kind) {
            self.requests += 1;
            let write = matches!(s.action, Some("write" | "delete" | "admin"));
            let m = self.minute(s.now);
            m.requests += 1;
            if s.refused {
                m.errors += 1;
            }
            if write {
                m.writes += 1;
            }
            if s.refused {
                self.refusals += 1;
            }
        }
        let now = s.now;
        let this_minute = self.last_minute(now);
        if span >= WARMUP
            && this_minute as f64 > (t.spike_factor * baseline).max(t.spike_min as f64)
            && self.cooled(Rule::RateSpike, now, t)
        {
            out.push(Finding {
                rule: Rule::RateSpike,
                detail: format!(
                    "{this_minute} requests this minute against a baseline of {baseline:.1} per minute"
                ),
            });
        }
        if t.first_use && s.ok && !s.repeat && s.kind == "token.get" {
            if let Some(p) = s.provider {
                let had_history = !self.known.is_empty();
                let mut new: Vec<String> = Vec::new();
                if self.known.insert(p.to_owned()) {
                    new.push(format!("provider {p}"));
                }
                for sc in s.scopes {
                    if self.known.insert(format!("{p} {sc}")) {
                        new.push(format!("scope {sc}"));
                    }
                }
                if had_history && !new.is_empty() {
                    out.push(Finding {
                        rule: Rule::FirstUse,
                        detail: format!("first use of {} on {p}", new.join(", ")),
                    });
                }
            }
        }
        if let Some(owner) = s.resource_owner {
            if !owner.is_empty()
                && owner != s.user
                && counts(s.kind)
                && self.cooled(Rule::CrossUser, now, t)
            {
                out.push(Finding {
                    rule: Rule::CrossUser,
                    detail: format!("asked for data of {owner:?} while serving {:?}", s.user),
                });
            }
        }
        let (writes, errors, requests) = self.recent(now);
        if writes > t.velocity_per_minute && self.cooled(Rule::Velocity, now, t) {
            out.push(Finding {
                rule: Rule::Velocity,
                detail: format!(
                    "{writes} write/delete/admin actions this minute (threshold {})",
                    t.velocity_per_minute
                ),
            });
        }
        if errors >= t.errors_min
            && errors as f64 >= t.error_ratio * requests as f64
            && self.cooled(Rule::ErrorRate, now, t)
        {
            out.push(Finding {
                rule: Rule::ErrorRate,
                detail: format!("{errors} of {requests} requests refused in 5 minutes"),
            });
        }
        if s.ok
            && matches!(s.kind, "delegation.create" | "delegation.use")
            && s.depth >= t.delegation_depth
            && self.cooled(Rule::DeepDelegation, now, t)
        {
            out.push(Finding {
                rule: Rule::DeepDelegation,
                detail: format!("a delegation chain {} levels deep", s.depth),
            });
        }
        for f in &out {
            self.anomalies += 1;
            self.last_anomaly = Some((now, f.rule.as_str().into()));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // A minute boundary.
    const T0: i64 = 1_800_000_000;

    fn t() -> MonitorSection {
        MonitorSection::default()
    }

    fn get(now: i64, scopes: &[String]) -> Seen<'_> {
        Seen {
            now,
            kind: "token.get",
            provider: Some("github"),
            scopes,
            ok: true,
            action: Some("read"),
            user: "alice",
            ..Default::default()
        }
    }

    fn rules(f: &[Finding]) -> Vec<&'static str> {
        f.iter().map(|f| f.rule.as_str()).collect()
    }

    /// `n` per minute for `minutes`, returning everything that fired.
    fn steady(a: &mut AgentStats, from: i64, minutes: i64, n: i64) -> Vec<Finding> {
        let scopes = vec!["repo".to_string()];
        let mut out = vec![];
        for m in 0..minutes {
            for i in 0..n {
                out.extend(a.observe(&get(from + m * 60 + i * (60 / n.max(1)), &scopes), &t()));
            }
        }
        out
    }

    #[test]
    fn rate_spike_fires_far_above_the_agents_own_baseline() {
        let mut a = AgentStats::default();
        assert!(steady(&mut a, T0, 15, 10).is_empty());
        let burst = steady(&mut a, T0 + 15 * 60, 1, 60)
            .into_iter()
            .chain(steady(&mut a, T0 + 15 * 60 + 59, 1, 1))
            .collect::<Vec<_>>();
        assert_eq!(rules(&burst), ["rate_spike"], "{burst:?}");
    }

    #[test]
    fn rate_spike_is_quiet_on_steady_busy_traffic_and_during_warmup() {
        let mut a = AgentStats::default();
        // Busy but steady: 100 a minute for half an hour.
        assert!(steady(&mut a, T0, 30, 100).is_empty());
        // A brand-new agent's first busy minute is not a spike.
        let mut b = AgentStats::default();
        assert!(steady(&mut b, T0, 1, 100).is_empty());
    }

    #[test]
    fn first_use_fires_for_a_new_scope_and_provider_but_not_the_first_token() {
        let mut a = AgentStats::default();
        let repo = vec!["repo".to_string()];
        assert!(a.observe(&get(T0, &repo), &t()).is_empty(), "first token");
        assert!(
            a.observe(&get(T0 + 1, &repo), &t()).is_empty(),
            "same again"
        );
        let more = vec!["repo".to_string(), "admin:org".to_string()];
        let f = a.observe(&get(T0 + 2, &more), &t());
        assert_eq!(rules(&f), ["first_use"]);
        assert!(f[0].detail.contains("admin:org"), "{f:?}");
        let mut other = get(T0 + 3, &repo);
        other.provider = Some("google");
        assert_eq!(rules(&a.observe(&other, &t())), ["first_use"]);
    }

    #[test]
    fn first_use_is_quiet_for_known_scopes_even_after_a_restart() {
        let mut a = AgentStats::default();
        a.remember("github", &["repo".to_string(), "read:user".to_string()]);
        let both = vec!["read:user".to_string(), "repo".to_string()];
        for i in 0..50 {
            assert!(a.observe(&get(T0 + i, &both), &t()).is_empty());
        }
    }

    #[test]
    fn cross_user_fires_for_another_users_data_only() {
        let mut a = AgentStats::default();
        let repo = vec!["repo".to_string()];
        let mut mine = get(T0, &repo);
        mine.resource_owner = Some("alice");
        assert!(a.observe(&mine, &t()).is_empty(), "own data is quiet");
        let mut theirs = get(T0 + 1, &repo);
        theirs.resource_owner = Some("bob");
        theirs.ok = false;
        theirs.refused = true;
        let f = a.observe(&theirs, &t());
        assert_eq!(rules(&f), ["cross_user"]);
        assert!(f[0].detail.contains("bob"));
    }

    #[test]
    fn velocity_fires_on_many_writes_a_minute_not_on_many_reads() {
        let mut a = AgentStats::default();
        let repo = vec!["repo".to_string()];
        for i in 0..50 {
            assert!(a.observe(&get(T0 + i, &repo), &t()).is_empty(), "reads");
        }
        let mut fired = vec![];
        for i in 0..31 {
            let mut w = get(T0 + 60 + i, &repo);
            w.action = Some("write");
            fired.extend(a.observe(&w, &t()));
        }
        assert_eq!(rules(&fired), ["velocity"]);
    }

    #[test]
    fn error_rate_fires_on_mostly_refused_traffic_only() {
        let mut a = AgentStats::default();
        let repo = vec!["repo".to_string()];
        // Quiet: 100 requests, 19 refused.
        for i in 0..100 {
            let mut s = get(T0 + i, &repo);
            if i % 5 == 0 && i < 95 {
                s.ok = false;
                s.refused = true;
            }
            assert!(a.observe(&s, &t()).is_empty(), "at {i}");
        }
        let mut b = AgentStats::default();
        let mut fired = vec![];
        for i in 0..25 {
            let mut s = get(T0 + i, &repo);
            s.ok = false;
            s.refused = true;
            fired.extend(b.observe(&s, &t()));
        }
        assert_eq!(rules(&fired), ["error_rate"]);
    }

    #[test]
    fn deep_delegation_fires_at_the_configured_depth() {
        let mut a = AgentStats::default();
        let repo = vec!["repo".to_string()];
        for depth in 1..=2 {
            let s = Seen {
                kind: "delegation.create",
                depth,
                ..get(T0, &repo)
            };
            assert!(a.observe(&s, &t()).is_empty(), "depth {depth}");
        }
        let s = Seen {
            kind: "delegation.use",
            depth: 3,
            ..get(T0, &repo)
        };
        assert_eq!(rules(&a.observe(&s, &t())), ["deep_delegation"]);
    }

    #[test]
    fn a_repeat_hand_out_counts_but_is_never_a_first_use() {
        let mut a = AgentStats::default();
        let repo = vec!["repo".to_string()];
        a.remember("github", &repo);
        let issues = vec!["issues".to_string()];
        let repeat = Seen {
            repeat: true,
            ..get(T0, &issues)
        };
        assert!(a.observe(&repeat, &t()).is_empty(), "no first_use");
        assert_eq!((a.requests, a.last_minute(T0)), (1, 1), "counted");
        assert_eq!(rules(&a.observe(&get(T0, &issues), &t())), ["first_use"]);
    }

    #[test]
    fn a_fired_rule_cools_down() {
        let mut a = AgentStats::default();
        let repo = vec!["repo".to_string()];
        let deep = |now| Seen {
            kind: "delegation.use",
            depth: 3,
            ..get(now, &repo)
        };
        assert_eq!(a.observe(&deep(T0), &t()).len(), 1);
        assert!(a.observe(&deep(T0 + 60), &t()).is_empty());
        assert_eq!(a.observe(&deep(T0 + 601), &t()).len(), 1);
        assert_eq!(a.anomalies, 2);
    }
}
