//! Builds the input document (`valetkey_ipc::policy::PolicyInput`) from
//! what the daemon knows: the registry record, the attested binary, the
//! delegation chain and the request. Agent-declared facts can only make a
//! request look stronger or more sensitive, never weaker.

use rustc_hash::FxHashMap;
use std::sync::Mutex;

use valetkey_ipc::methods::RequestContext;
use valetkey_ipc::policy::{
    Action, Classification, HumanApproval, PolicyAgent, PolicyBinary, PolicyDelegation,
    PolicyInput, PolicyResource, PolicyTime, RequestStats,
};

use crate::store::AgentRow;

/// Requests per agent in the last minute, in one-second buckets.
#[derive(Default)]
pub struct Rates {
    map: Mutex<FxHashMap<i64, Window>>,
}

/// One agent's last minute: sixty one-second buckets and their running
/// total, so a hit costs O(1) instead of a sum over the minute.
struct Window {
    buckets: [u32; 60],
    /// The second the newest bucket is for.
    last: u64,
    total: u32,
}

impl Window {
    fn new(now: u64) -> Self {
        Self {
            buckets: [0; 60],
            last: now,
            total: 0,
        }
    }

    /// Moves the window to `now`, emptying the buckets of the seconds
    /// that left the minute. A clock that went back counts in the newest
    /// bucket.
    fn advance(&mut self, now: u64) {
        let gap = now.saturating_sub(self.last).min(60);
        for i in 1..=gap {
            let b = &mut self.buckets[((self.last + i) % 60) as usize];
            self.total = self.total.saturating_sub(*b);
            *b = 0;
        }
        self.last = self.last.max(now);
    }
}

impl Rates {
    /// Counts a request by `agent_id` at `now` (Unix seconds); returns the
    /// count over the last 60 seconds, this one included.
    pub fn hit(&self, agent_id: i64, now: i64) -> u32 {
        let now = now.max(0) as u64;
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let w = map.entry(agent_id).or_insert_with(|| Window::new(now));
        w.advance(now);
        let b = &mut w.buckets[(w.last % 60) as usize];
        *b = b.saturating_add(1);
        w.total = w.total.saturating_add(1);
        w.total
    }
}

/// The request-specific facts.
pub struct InputRequest<'a> {
    /// `token.get` or `delegation.create`.
    pub method: &'a str,
    /// Provider name.
    pub provider: &'a str,
    /// Its configured sensitivity.
    pub provider_sensitivity: Classification,
    /// Sorted scopes.
    pub scopes: &'a [String],
    /// RFC 8707 resource.
    pub indicator: Option<&'a str>,
    /// What the agent declared.
    pub context: Option<&'a RequestContext>,
    /// `Some` for `delegation.create`: forces the action to `delegate`.
    pub delegating_to: Option<&'a str>,
    /// Depth of the caller (or of the token being made).
    pub depth: u32,
    /// Depth limit.
    pub max_depth: u32,
    /// The chain, outermost first.
    pub chain: &'a [String],
    /// When the access would end (unix seconds).
    pub expires_at: i64,
    /// The calling binary.
    pub exe: &'a str,
    /// Its hash.
    pub sha256: &'a str,
    /// The caller's box, if it runs in one.
    pub confinement: Option<&'a valetkey_ipc::methods::BoxFacts>,
    /// Requests in the last minute.
    pub rate_last_minute: u32,
    /// The approval, when re-deciding an approved request.
    pub approval: Option<String>,
    /// When the request is decided (Unix nanoseconds, from the daemon's clock).
    pub now_ns: i64,
    /// An MCP request the proxy is passing on, as it read it.
    pub mcp: Option<&'a valetkey_ipc::policy::PolicyMcp>,
}

fn weekday(days_since_epoch: i64) -> &'static str {
    // 1970-01-01 was a Thursday.
    const DAYS: [&str; 7] = [
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
        "Monday",
        "Tuesday",
        "Wednesday",
    ];
    DAYS[days_since_epoch.rem_euclid(7) as usize]
}

/// The `time` facts of the input at `now_ns` (Unix nanoseconds).
fn time_at(now_ns: i64) -> PolicyTime {
    let secs = now_ns.div_euclid(1_000_000_000);
    let at = std::time::UNIX_EPOCH
        .checked_add(std::time::Duration::from_secs(secs.max(0) as u64))
        .unwrap_or(std::time::UNIX_EPOCH);
    PolicyTime {
        now_ns,
        rfc3339: humantime::format_rfc3339_seconds(at).to_string(),
        hour_utc: (secs.rem_euclid(86_400) / 3600) as u32,
        weekday_utc: weekday(secs.div_euclid(86_400)).into(),
    }
}

/// The input document for `agent` making request `r`.
pub fn build_input(agent: &AgentRow, r: &InputRequest<'_>) -> PolicyInput {
    let user = crate::store::os_user();
    let derived = r
        .scopes
        .iter()
        .map(|s| Action::of_scope(s))
        .max()
        .unwrap_or(Action::Read);
    let declared = r.context.and_then(|c| c.action);
    let action = if r.delegating_to.is_some() {
        Action::Delegate
    } else {
        declared.map_or(derived, |a| a.max(derived))
    };
    let res = r
        .context
        .and_then(|c| c.resource.clone())
        .unwrap_or_default();
    let sensitivity = res
        .sensitivity
        .map_or(r.provider_sensitivity, |s| s.max(r.provider_sensitivity));
    PolicyInput {
        agent: PolicyAgent {
            id: agent.id,
            name: agent.name.clone(),
            display_name: agent.display_name.clone(),
            purpose: agent.purpose.clone(),
            declared_purpose: agent.declared_purpose.clone(),
            status: agent.status.clone(),
            binary: PolicyBinary {
                path: r.exe.to_owned(),
                sha256: r.sha256.to_owned(),
            },
            classification: Classification::parse(&agent.classification).unwrap_or_default(),
            owner: agent.owner.clone(),
            environment: agent.environment.clone(),
            tools: agent.tools.clone(),
            providers: agent.providers.clone(),
            delegating_user: user.clone(),
            token_expiry_ns: r.expires_at.saturating_mul(1_000_000_000),
            has_admin_scope: r
                .scopes
                .iter()
                .any(|s| Action::of_scope(s) == Action::Admin),
            confined: r.confinement.is_some(),
            confinement: r.confinement.cloned(),
        },
        delegation: PolicyDelegation {
            depth: r.depth,
            max_depth: r.max_depth,
            chain: r.chain.to_vec(),
            sub_agent: r.delegating_to.map(str::to_owned),
        },
        provider: r.provider.to_owned(),
        action,
        scopes: r.scopes.to_vec(),
        resource: PolicyResource {
            kind: res.kind.unwrap_or_else(|| r.provider.to_owned()),
            owner: res.owner.unwrap_or_else(|| user.clone()),
            sensitivity,
            indicator: r.indicator.map(str::to_owned),
        },
        tool: r.context.and_then(|c| c.tool.clone()).unwrap_or_default(),
        time: time_at(r.now_ns),
        human_approval: HumanApproval {
            exists: r.approval.is_some(),
            consent_id: r.approval.clone(),
        },
        request: RequestStats {
            rate_last_minute: r.rate_last_minute,
            method: r.method.to_owned(),
        },
        delegating_user: user,
        mcp: r.mcp.cloned(),
    }
}

/// A typical request at `now` (Unix seconds), used to check a policy
/// evaluates before it is put in force, and in tests.
pub fn sample_at(now: i64) -> PolicyInput {
    let agent = AgentRow {
        id: 1,
        name: "sample-agent".into(),
        purpose: "sample".into(),
        version: "1".into(),
        created_at: 0,
        last_seen: 0,
        status: crate::store::ACTIVE.into(),
        display_name: "sample-agent".into(),
        declared_purpose: "sample".into(),
        owner: "user".into(),
        classification: "internal".into(),
        environment: "local".into(),
        tools: vec![],
        providers: vec![],
        reviewed_at: None,
    };
    let scopes = vec!["repo:read".to_string()];
    let chain = ["user:user".to_string(), "agent:sample-agent".to_string()];
    build_input(
        &agent,
        &InputRequest {
            method: "token.get",
            provider: "local",
            provider_sensitivity: Classification::Internal,
            scopes: &scopes,
            indicator: None,
            context: None,
            delegating_to: None,
            depth: 0,
            max_depth: 3,
            chain: &chain,
            expires_at: now + 3600,
            exe: "/usr/bin/sample",
            sha256: "00",
            confinement: None,
            rate_last_minute: 1,
            approval: None,
            now_ns: now.saturating_mul(1_000_000_000),
            mcp: None,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_facts_only_ever_strengthen() {
        let mut i = sample_at(crate::clock::fixed::MONDAY_MORNING);
        assert_eq!(i.action, Action::Read);
        let ctx = RequestContext {
            action: Some(Action::Delete),
            tool: Some("t".into()),
            resource: Some(valetkey_ipc::methods::ResourceContext {
                kind: Some("calendar-events".into()),
                owner: Some("bob".into()),
                sensitivity: Some(Classification::Public),
            }),
        };
        let agent = crate::store::AgentRow {
            id: 1,
            name: "a".into(),
            purpose: String::new(),
            version: String::new(),
            created_at: 0,
            last_seen: 0,
            status: "active".into(),
            display_name: "a".into(),
            declared_purpose: String::new(),
            owner: String::new(),
            classification: "internal".into(),
            environment: String::new(),
            tools: vec![],
            providers: vec![],
            reviewed_at: None,
        };
        let scopes = vec!["repo:write".to_string()];
        i = build_input(
            &agent,
            &InputRequest {
                method: "token.get",
                provider: "p",
                provider_sensitivity: Classification::Internal,
                scopes: &scopes,
                indicator: None,
                context: Some(&ctx),
                delegating_to: None,
                depth: 0,
                max_depth: 3,
                chain: &[],
                expires_at: 10,
                exe: "/x",
                sha256: "00",
                confinement: None,
                rate_last_minute: 1,
                approval: None,
                now_ns: 0,
                mcp: None,
            },
        );
        assert_eq!(i.action, Action::Delete, "declared delete raises write");
        assert_eq!(
            i.resource.sensitivity,
            Classification::Internal,
            "public cannot lower internal"
        );
        assert_eq!(i.resource.owner, "bob");
        assert_eq!(i.resource.kind, "calendar-events");
        assert_eq!(i.agent.token_expiry_ns, 10_000_000_000);
    }

    #[test]
    fn rates_count_the_last_minute() {
        let r = Rates::default();
        let t = crate::clock::fixed::MONDAY_MORNING;
        assert_eq!(r.hit(1, t), 1);
        assert_eq!(r.hit(1, t + 30), 2);
        assert_eq!(r.hit(2, t + 30), 1);
        assert_eq!(r.hit(1, t + 59), 3);
        assert_eq!(
            r.hit(1, t + 61),
            3,
            "four hits, the first one left the minute"
        );
        assert_eq!(r.hit(1, t + 200), 1);
        assert_eq!(r.hit(1, t + 199), 2, "a clock that went back still counts");
        assert_eq!(r.hit(1, t + 259), 3);
        assert_eq!(r.hit(1, t + 260), 2, "the two at 200 left the minute");
    }

    #[test]
    fn weekdays_are_right() {
        assert_eq!(weekday(0), "Thursday");
        let t = time_at(crate::clock::fixed::FRIDAY_NIGHT * 1_000_000_000);
        assert_eq!(
            (t.weekday_utc.as_str(), t.hour_utc, t.rfc3339.as_str()),
            ("Friday", 23, "2026-11-27T23:59:00Z")
        );
        // 2026-11-22 is a Sunday: 20,779 days after the epoch.
        assert_eq!(weekday(20_779), "Sunday");
    }
}
