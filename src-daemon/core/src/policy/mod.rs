//! The policy step: every `token.get` and `delegation.create` is decided by
//! Rego policies (regorus) before grants and consent are looked at.
//!
//! Two packages take part:
//!
//! * `data.valetkey.builtin`, compiled into the binary (`builtin.rego`).
//!   Its `deny` and `require_approval` rules always apply; they are guard
//!   rails a user policy cannot switch off.
//! * `data.valetkey.authz`, the user's `.rego` files in the policy
//!   directory. Its `deny` and `require_approval` rules add to the
//!   built-in ones, and once it exists its `allow` replaces the built-in
//!   `allow` (so a user policy that allows only calendar reads means
//!   exactly that).
//!
//! `deny` and `require_approval` may be booleans (v0 style, as in the seed
//! article) or sets of messages (v1 style, which also explain the decision).
//! A request a person's approval would let through (a rule such as "deny
//! delete without human approval") becomes `require_approval`: the daemon
//! evaluates again with `input.human_approval.exists = true` and, if that
//! allows, asks the user.
//!
//! Fail closed, always: a policy that does not compile is refused and the
//! last good one stays in force (also across restarts, from a copy in the
//! data directory); with no good policy at all, or an evaluation error,
//! nothing is issued (`policy_unavailable`).

mod input;
pub mod testing;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use regorus::Value;
use valetkey_ipc::control::PolicyStatusResult;
use valetkey_ipc::policy::{PolicyDecision, PolicyInput, Verdict};
use valetkey_ipc::ErrorCode;

pub use input::{build_input, InputRequest, Rates};

use crate::clock::SharedClock;
use crate::config::{Config, RegoVersion};
use crate::error::BrokerError;

/// The built-in policy's source.
pub const BUILTIN: &str = include_str!("builtin.rego");
const BUILTIN_FILE: &str = "builtin.rego";
const USER_PACKAGE: &str = "data.valetkey.authz";
const BUILTIN_PACKAGE: &str = "data.valetkey.builtin";
const MAX_FILES: usize = 64;
const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// Why a policy could not be loaded or evaluated.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct PolicyError(pub String);

fn err(e: impl std::fmt::Display) -> PolicyError {
    PolicyError(e.to_string())
}

/// Policy source files: name and text.
pub type Sources = Vec<(String, String)>;

/// Reads the `.rego` files of `dir`, sorted by name. Test files
/// (`*_test.rego`) are included only when `tests` is set. A missing
/// directory has no files.
pub fn read_dir(dir: &Path, tests: bool) -> Result<Sources, PolicyError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(err(format!("cannot read {}: {e}", dir.display()))),
    };
    let mut names: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "rego"))
        .filter(|p| {
            tests
                || !p
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.ends_with("_test.rego"))
        })
        .collect();
    names.sort();
    if names.len() > MAX_FILES {
        return Err(err(format!(
            "{} holds {} policy files; at most {MAX_FILES} are read",
            dir.display(),
            names.len()
        )));
    }
    let mut out = Vec::new();
    for p in names {
        let meta = std::fs::metadata(&p).map_err(|e| err(format!("{}: {e}", p.display())))?;
        if meta.len() > MAX_FILE_BYTES {
            return Err(err(format!(
                "{} is larger than {MAX_FILE_BYTES} bytes",
                p.display()
            )));
        }
        let text = std::fs::read_to_string(&p)
            .map_err(|e| err(format!("{}: {e} (policy files must be UTF-8)", p.display())))?;
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        out.push((name, text));
    }
    Ok(out)
}

/// A compiled set of policies: the built-in one plus the user's.
pub struct PolicySet {
    engine: Mutex<regorus::Engine>,
    /// The user's files (names), in load order.
    pub files: Vec<String>,
    /// Their sources (for the last-good copy).
    pub sources: Sources,
    /// The syntax they were read with.
    pub version: RegoVersion,
    user: bool,
    /// Decisions by input, while no policy reads the clock, the request
    /// rate or another source that changes between identical requests.
    cache: Option<Mutex<HashMap<PolicyInput, PolicyDecision>>>,
}

/// Words that make a policy's decision depend on more than the input's
/// stable facts (the clock, the rate, randomness, the network).
const UNCACHEABLE: &[&str] = &["time", "rate_last_minute", "rand.", "uuid.", "http.send"];
/// When the load-time check request is made (any fixed instant will do:
/// it only checks that the policy evaluates).
const SAMPLE_AT: i64 = crate::clock::fixed::MONDAY_MORNING;
/// Cached decisions kept at most (then the cache starts over).
const CACHE_MAX: usize = 4096;

/// The raw outcome of one evaluation.
struct Raw {
    verdict: Verdict,
    rule: String,
    reasons: Vec<String>,
}

/// Messages a `deny` / `require_approval` rule produced.
fn fired(v: &Value, rule: &str) -> Vec<String> {
    match v {
        Value::Undefined | Value::Null | Value::Bool(false) => vec![],
        Value::Bool(true) => vec![rule.to_owned()],
        Value::String(s) if s.is_empty() => vec![],
        Value::String(s) => vec![s.to_string()],
        Value::Set(set) => set.iter().map(text_of).collect(),
        Value::Array(a) => a.iter().map(text_of).collect(),
        // Anything else is a policy bug; fail closed by treating it as fired.
        other => vec![format!("{rule} = {}", text_of(other))],
    }
}

fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.to_string(),
        other => other.to_json_str().unwrap_or_else(|_| "?".into()),
    }
}

impl PolicySet {
    /// Compiles the built-in policy plus `sources`, and checks the result
    /// evaluates. The error names the file and line.
    pub fn compile(sources: Sources, version: RegoVersion) -> Result<PolicySet, PolicyError> {
        let mut engine = regorus::Engine::new();
        engine
            .add_policy(BUILTIN_FILE.into(), BUILTIN.into())
            .map_err(|e| err(format!("the built-in policy: {e}")))?;
        engine.set_rego_v0(version == RegoVersion::V0);
        let mut user = false;
        for (name, text) in &sources {
            let pkg = engine
                .add_policy(name.clone(), text.clone())
                .map_err(|e| err(format!("{name}: {e}")))?;
            if pkg == BUILTIN_PACKAGE || pkg.starts_with(&format!("{BUILTIN_PACKAGE}.")) {
                return Err(err(format!(
                    "{name}: package {pkg} is reserved for the built-in policy; use package valetkey.authz"
                )));
            }
            user |= pkg == USER_PACKAGE;
        }
        let has_decision_files = sources.iter().any(|(n, _)| !n.ends_with("_test.rego"));
        if has_decision_files && !user {
            return Err(err(
                "no policy file declares package valetkey.authz, where Valet Key reads allow, deny and require_approval",
            ));
        }
        let cacheable = !sources
            .iter()
            .any(|(_, text)| UNCACHEABLE.iter().any(|w| text.contains(w)));
        let set = PolicySet {
            cache: cacheable.then(|| Mutex::new(HashMap::new())),
            engine: Mutex::new(engine),
            files: sources.iter().map(|(n, _)| n.clone()).collect(),
            sources,
            version,
            user,
        };
        // Rego reports some mistakes (conflicting values, bad built-in
        // calls) only when evaluating: try one typical request now, so a
        // broken file is refused at load and not on an agent's request.
        set.decide(&input::sample_at(SAMPLE_AT))
            .map_err(|e| err(format!("the policy fails to evaluate: {e}")))?;
        Ok(set)
    }

    /// Reads and compiles `dir`.
    pub fn load_dir(dir: &Path, version: RegoVersion) -> Result<PolicySet, PolicyError> {
        Self::compile(read_dir(dir, false)?, version)
    }

    /// Whether identical requests get identical decisions (the policy
    /// reads neither the clock, the request rate nor randomness), so a
    /// decision can be reused.
    pub fn cacheable(&self) -> bool {
        self.cache.is_some()
    }

    /// Which policy decided, for people.
    fn source_of(&self, rule: &str) -> String {
        if rule.starts_with(BUILTIN_PACKAGE) || !self.user {
            "builtin".into()
        } else {
            self.files.join(", ")
        }
    }

    fn eval(&self, input: &PolicyInput) -> Result<Raw, PolicyError> {
        let json = serde_json::to_value(input).map_err(err)?;
        let value = {
            let mut engine = self.engine.lock().unwrap_or_else(|p| p.into_inner());
            engine.set_input(Value::from(json));
            let r = engine
                .eval_query("data.valetkey".into(), false)
                .map_err(err)?;
            r.result
                .into_iter()
                .next()
                .and_then(|x| x.expressions.into_iter().next())
                .map(|e| e.value)
                .unwrap_or(Value::Undefined)
        };
        let builtin = &value["builtin"];
        let user = &value["authz"];
        let deny_b = fired(&builtin["deny"], "data.valetkey.builtin.deny");
        if !deny_b.is_empty() {
            return Ok(Raw {
                verdict: Verdict::Deny,
                rule: "data.valetkey.builtin.deny".into(),
                reasons: deny_b,
            });
        }
        let deny_u = fired(&user["deny"], "data.valetkey.authz.deny");
        if !deny_u.is_empty() {
            return Ok(Raw {
                verdict: Verdict::Deny,
                rule: "data.valetkey.authz.deny".into(),
                reasons: deny_u,
            });
        }
        if !input.human_approval.exists {
            for pkg in ["builtin", "authz"] {
                let rule = format!("data.valetkey.{pkg}.require_approval");
                let r = fired(&value[pkg]["require_approval"], &rule);
                if !r.is_empty() {
                    return Ok(Raw {
                        verdict: Verdict::RequireApproval,
                        rule,
                        reasons: r,
                    });
                }
            }
        }
        let (pkg, allow) = if self.user {
            ("authz", &user["allow"])
        } else {
            ("builtin", &builtin["allow"])
        };
        let rule = format!("data.valetkey.{pkg}.allow");
        if matches!(allow, Value::Bool(true)) {
            Ok(Raw {
                verdict: Verdict::Allow,
                rule,
                reasons: vec![],
            })
        } else {
            Ok(Raw {
                verdict: Verdict::Deny,
                reasons: vec![format!("no {rule} rule matched this request")],
                rule,
            })
        }
    }

    /// Decides a request. A refusal that a person's approval would lift
    /// becomes `require_approval`. Identical requests reuse the decision
    /// when the policy cannot tell them apart (see `UNCACHEABLE`): an
    /// evaluation costs far more than the rest of a cached `token.get`.
    pub fn decide(&self, input: &PolicyInput) -> Result<PolicyDecision, PolicyError> {
        let Some(cache) = &self.cache else {
            return self.evaluate(input);
        };
        let mut stable = input.clone();
        stable.time = Default::default();
        stable.request.rate_last_minute = 0;
        if let Some(d) = cache.lock().unwrap_or_else(|p| p.into_inner()).get(&stable) {
            return Ok(d.clone());
        }
        let d = self.evaluate(input)?;
        let mut c = cache.lock().unwrap_or_else(|p| p.into_inner());
        if c.len() >= CACHE_MAX {
            c.clear();
        }
        c.insert(stable, d.clone());
        Ok(d)
    }

    fn evaluate(&self, input: &PolicyInput) -> Result<PolicyDecision, PolicyError> {
        let mut raw = self.eval(input)?;
        if raw.verdict == Verdict::Deny && !input.human_approval.exists {
            let mut approved = input.clone();
            approved.human_approval.exists = true;
            if self.eval(&approved)?.verdict == Verdict::Allow {
                raw.verdict = Verdict::RequireApproval;
            }
        }
        Ok(PolicyDecision {
            verdict: raw.verdict,
            source: self.source_of(&raw.rule),
            rule: raw.rule,
            reasons: raw.reasons,
        })
    }
}

/// What is in force, and what happened to the last load.
struct Loaded {
    set: Option<Arc<PolicySet>>,
    loaded_at: i64,
    last_good: bool,
    error: Option<String>,
}

/// The daemon's policies: the set in force, reloadable.
pub struct Policies {
    /// When a load happened (for `policy.status`).
    clock: SharedClock,
    /// The policy directory.
    pub dir: PathBuf,
    version: RegoVersion,
    last_good_path: PathBuf,
    state: RwLock<Loaded>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct LastGood {
    v0: bool,
    files: Sources,
}

/// The policy directory a config names.
pub fn dir_of(cfg: &Config) -> PathBuf {
    cfg.policy.dir.clone().unwrap_or_else(|| {
        cfg.path
            .parent()
            .map(|p| p.join("policies"))
            .unwrap_or_else(|| crate::dirs::config_dir().join("policies"))
    })
}

impl Policies {
    /// Loads the policy directory; if it is broken, the last good copy
    /// saved in `data_dir`; if there is none, nothing (fail closed).
    pub fn load(cfg: &Config, data_dir: &Path, clock: SharedClock) -> Policies {
        let p = Policies {
            clock,
            dir: dir_of(cfg),
            version: cfg.policy.rego_version,
            last_good_path: data_dir.join("policy-last-good.json"),
            state: RwLock::new(Loaded {
                set: None,
                loaded_at: 0,
                last_good: false,
                error: None,
            }),
        };
        if let Err(e) = p.reload() {
            match p.read_last_good() {
                Some(set) => {
                    tracing::error!(error = %e, files = ?set.files, "the policy files are broken; the last good copy is in force");
                    let mut st = p.write();
                    st.set = Some(Arc::new(set));
                    st.last_good = true;
                    st.loaded_at = p.clock.now();
                }
                None => {
                    tracing::error!(error = %e, "the policy files are broken and there is no last good copy; nothing is issued until they are fixed")
                }
            }
        }
        p
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Loaded> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Loaded> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn read_last_good(&self) -> Option<PolicySet> {
        let text = std::fs::read_to_string(&self.last_good_path).ok()?;
        let lg: LastGood = serde_json::from_str(&text).ok()?;
        let v = if lg.v0 {
            RegoVersion::V0
        } else {
            RegoVersion::V1
        };
        PolicySet::compile(lg.files, v).ok()
    }

    fn save_last_good(&self, set: &PolicySet) {
        let lg = LastGood {
            v0: set.version == RegoVersion::V0,
            files: set.sources.clone(),
        };
        let tmp = self.last_good_path.with_extension("json.tmp");
        let r = serde_json::to_vec(&lg)
            .map_err(std::io::Error::other)
            .and_then(|bytes| std::fs::write(&tmp, bytes))
            .and_then(|()| std::fs::rename(&tmp, &self.last_good_path));
        if let Err(e) = r {
            tracing::warn!(error = %e, "cannot save the last good policy copy");
        }
    }

    /// Reads the directory again. On success the new set is in force; on
    /// failure the old one stays and the error is returned (and kept for
    /// `policy.status`).
    pub fn reload(&self) -> Result<Vec<String>, String> {
        match PolicySet::load_dir(&self.dir, self.version) {
            Ok(set) => {
                let files = set.files.clone();
                self.save_last_good(&set);
                let mut st = self.write();
                st.set = Some(Arc::new(set));
                st.loaded_at = self.clock.now();
                st.last_good = false;
                st.error = None;
                tracing::info!(dir = %self.dir.display(), ?files, "policy loaded");
                Ok(files)
            }
            Err(e) => {
                let msg = e.to_string();
                let mut st = self.write();
                st.error = Some(msg.clone());
                if st.set.is_some() {
                    st.last_good = true;
                }
                tracing::warn!(error = %msg, "policy refused; the previous policy stays in force");
                Err(msg)
            }
        }
    }

    /// Decides `input`, or refuses with `policy_unavailable`.
    pub fn decide(&self, input: &PolicyInput) -> Result<PolicyDecision, BrokerError> {
        let set = self.current()?;
        self.decide_with(&set, input)
    }

    /// The set in force, or `policy_unavailable`.
    pub fn current(&self) -> Result<Arc<PolicySet>, BrokerError> {
        let set = self.read().set.clone();
        let Some(set) = set else {
            return Err(BrokerError::rpc(
                ErrorCode::PolicyUnavailable,
                format!(
                    "no valid policy is loaded ({}); fix the files in {} (`valetkey policy status` shows the error); nothing is issued until then",
                    self.read().error.clone().unwrap_or_default(),
                    self.dir.display()
                ),
            ));
        };
        Ok(set)
    }

    /// Decides `input` with `set` (from [`Policies::current`]).
    pub fn decide_with(
        &self,
        set: &PolicySet,
        input: &PolicyInput,
    ) -> Result<PolicyDecision, BrokerError> {
        set.decide(input).map_err(|e| {
            tracing::error!(error = %e, "policy evaluation failed; refusing");
            BrokerError::rpc(
                ErrorCode::PolicyUnavailable,
                format!(
                    "the policy failed to evaluate ({e}); nothing was issued. Fix the policy in {}",
                    self.dir.display()
                ),
            )
        })
    }

    /// What is in force.
    pub fn status(&self) -> PolicyStatusResult {
        let st = self.read();
        PolicyStatusResult {
            dir: self.dir.display().to_string(),
            files: st.set.as_ref().map(|s| s.files.clone()).unwrap_or_default(),
            loaded_at: st.loaded_at,
            last_good: st.last_good,
            error: st.error.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::fixed;

    /// The sample request on a Monday morning: no test depends on the day
    /// it runs (a "no Fridays" rule below once failed CI every Friday).
    fn sample() -> PolicyInput {
        input::sample_at(fixed::MONDAY_MORNING)
    }

    fn set(files: &[(&str, &str)], v: RegoVersion) -> Result<PolicySet, PolicyError> {
        PolicySet::compile(
            files
                .iter()
                .map(|(n, t)| (n.to_string(), t.to_string()))
                .collect(),
            v,
        )
    }

    #[test]
    fn the_builtin_policy_allows_an_active_agent() {
        let s = set(&[], RegoVersion::V1).expect("builtin compiles");
        let d = s.decide(&sample()).expect("decides");
        assert_eq!(d.verdict, Verdict::Allow, "{d:?}");
        assert_eq!(d.source, "builtin");
    }

    #[test]
    fn builtin_guard_rails_deny_and_ask() {
        let s = set(&[], RegoVersion::V1).expect("builtin");
        let mut i = sample();
        i.agent.status = "suspended".into();
        let d = s.decide(&i).expect("decides");
        assert_eq!(d.verdict, Verdict::Deny);
        assert!(d.reasons[0].contains("suspended"), "{d:?}");

        let mut i = sample();
        i.resource.sensitivity = valetkey_ipc::policy::Classification::Confidential;
        assert_eq!(s.decide(&i).expect("d").verdict, Verdict::Deny);

        let mut i = sample();
        i.action = valetkey_ipc::policy::Action::Delegate;
        i.delegation.depth = 3;
        let d = s.decide(&i).expect("d");
        assert_eq!(d.verdict, Verdict::RequireApproval, "{d:?}");
        i.human_approval.exists = true;
        assert_eq!(s.decide(&i).expect("d").verdict, Verdict::Allow);
        i.delegation.depth = 4;
        assert_eq!(s.decide(&i).expect("d").verdict, Verdict::Deny);
    }

    #[test]
    fn a_user_allow_replaces_the_builtin_one_and_denials_add_up() {
        let only_github = r#"package valetkey.authz
import rego.v1
allow if input.provider == "github"
deny contains "no Fridays" if input.time.weekday_utc == "Friday"
"#;
        let s = set(&[("gh.rego", only_github)], RegoVersion::V1).expect("compiles");
        let mut i = sample();
        i.provider = "local".into();
        let d = s.decide(&i).expect("d");
        assert_eq!(d.verdict, Verdict::Deny);
        assert_eq!(d.rule, "data.valetkey.authz.allow");
        assert_eq!(d.source, "gh.rego");
        i.provider = "github".into();
        i.time.weekday_utc = "Friday".into();
        let d = s.decide(&i).expect("d");
        assert_eq!(
            (d.verdict, d.reasons.clone()),
            (Verdict::Deny, vec!["no Fridays".to_string()])
        );
        i.time.weekday_utc = "Monday".into();
        assert_eq!(s.decide(&i).expect("d").verdict, Verdict::Allow);
    }

    #[test]
    fn decisions_are_reused_only_when_the_policy_cannot_tell_requests_apart() {
        let s = set(&[], RegoVersion::V1).expect("builtin");
        assert!(s.cache.is_some(), "the built-in policy reads no clock");
        let mut i = sample();
        s.decide(&i).expect("d");
        i.time.hour_utc = (i.time.hour_utc + 1) % 24;
        assert_eq!(s.decide(&i).expect("d").verdict, Verdict::Allow);
        assert_eq!(
            s.cache.as_ref().map(|c| c.lock().expect("l").len()),
            Some(1),
            "time is not part of the key"
        );
        // Different facts are different entries, with their own decision.
        i.agent.status = "suspended".into();
        assert_eq!(s.decide(&i).expect("d").verdict, Verdict::Deny);

        let nights = r#"package valetkey.authz
import rego.v1
allow if input.time.hour_utc < 6
"#;
        let s = set(&[("n.rego", nights)], RegoVersion::V1).expect("compiles");
        assert!(
            s.cache.is_none(),
            "a policy reading the clock is evaluated every time"
        );
        let mut i = sample();
        i.time.hour_utc = 3;
        assert_eq!(s.decide(&i).expect("d").verdict, Verdict::Allow);
        i.time.hour_utc = 12;
        assert_eq!(s.decide(&i).expect("d").verdict, Verdict::Deny);
    }

    #[test]
    fn broken_or_misplaced_policies_are_refused_with_the_file_named() {
        let e = set(
            &[("bad.rego", "package valetkey.authz\nallow if {")],
            RegoVersion::V1,
        )
        .err()
        .expect("syntax error");
        assert!(e.0.contains("bad.rego"), "{e}");
        let e = set(
            &[("x.rego", "package other\nimport rego.v1\nallow := true\n")],
            RegoVersion::V1,
        )
        .err()
        .expect("wrong package");
        assert!(e.0.contains("valetkey.authz"), "{e}");
        let e = set(
            &[(
                "x.rego",
                "package valetkey.builtin\nimport rego.v1\ndeny := set()\n",
            )],
            RegoVersion::V1,
        )
        .err()
        .expect("reserved");
        assert!(e.0.contains("reserved"), "{e}");
        // Conflicting values only show when evaluating: caught at load.
        let e = set(
            &[(
                "c.rego",
                "package valetkey.authz\nimport rego.v1\nallow := true\nallow := false\n",
            )],
            RegoVersion::V1,
        )
        .err()
        .expect("conflict");
        assert!(!e.0.is_empty());
    }

    #[test]
    fn v0_syntax_is_refused_in_v1_mode_and_read_in_v0_mode() {
        let v0 = "package valetkey.authz\nallow { input.provider == \"local\" }\n";
        assert!(set(&[("v0.rego", v0)], RegoVersion::V1).is_err());
        let s = set(&[("v0.rego", v0)], RegoVersion::V0).expect("v0 mode");
        assert_eq!(s.decide(&sample()).expect("d").verdict, Verdict::Allow);
    }
}
