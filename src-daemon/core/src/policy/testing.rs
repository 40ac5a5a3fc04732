//! `valetkey policy test`: runs a policy's own tests, as `opa test` does.
//! Every rule whose name starts with `test_` in any file of the directory
//! (test files included) must evaluate to `true`.

use std::path::Path;

use regorus::Value;

use super::{read_dir, PolicyError, BUILTIN, BUILTIN_FILE};
use crate::config::RegoVersion;

/// One test's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestOutcome {
    /// `data.PACKAGE.test_NAME`.
    pub name: String,
    /// The file it is in.
    pub file: String,
    /// Passed?
    pub passed: bool,
    /// What it evaluated to, or the error, when it failed.
    pub detail: Option<String>,
}

/// The names of `test_…` rules a file defines (rule heads start a line).
fn test_rules(text: &str) -> Vec<String> {
    let mut v: Vec<String> = text
        .lines()
        .filter_map(|l| {
            let l = l.strip_prefix("test_")?;
            let name: String = l
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            Some(format!("test_{name}"))
        })
        .collect();
    v.dedup();
    v
}

/// Runs every test in `dir`.
pub fn run(dir: &Path, version: RegoVersion) -> Result<Vec<TestOutcome>, PolicyError> {
    let sources = read_dir(dir, true)?;
    let mut engine = regorus::Engine::new();
    engine
        .add_policy(BUILTIN_FILE.into(), BUILTIN.into())
        .map_err(|e| PolicyError(e.to_string()))?;
    engine.set_rego_v0(version == RegoVersion::V0);
    let mut wanted = Vec::new();
    for (name, text) in &sources {
        let pkg = engine
            .add_policy(name.clone(), text.clone())
            .map_err(|e| PolicyError(format!("{name}: {e}")))?;
        for t in test_rules(text) {
            wanted.push((name.clone(), format!("{pkg}.{t}")));
        }
    }
    let mut out = Vec::new();
    for (file, rule) in wanted {
        let r = engine.eval_rule(rule.clone());
        let (passed, detail) = match r {
            Ok(Value::Bool(true)) => (true, None),
            Ok(Value::Undefined) => (false, Some("undefined (a condition did not hold)".into())),
            Ok(v) => (false, Some(v.to_json_str().unwrap_or_default())),
            Err(e) => (false, Some(e.to_string())),
        };
        out.push(TestOutcome {
            name: rule,
            file,
            passed,
            detail,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_test_rules_at_line_starts() {
        let t = "package x\ntest_a if { true }\n  test_not_a_head\ntest_b {\n true\n}\n";
        assert_eq!(test_rules(t), vec!["test_a", "test_b"]);
    }

    #[test]
    fn passing_and_failing_tests_are_told_apart() {
        let dir = tempfile::tempdir().expect("dir");
        std::fs::write(
            dir.path().join("p.rego"),
            "package valetkey.authz\nimport rego.v1\nallow if input.x == 1\n",
        )
        .expect("write");
        std::fs::write(
            dir.path().join("p_test.rego"),
            "package valetkey.authz_test\nimport rego.v1\ntest_allows if data.valetkey.authz.allow with input as {\"x\": 1}\ntest_wrong if data.valetkey.authz.allow with input as {\"x\": 2}\n",
        )
        .expect("write");
        let r = run(dir.path(), RegoVersion::V1).expect("runs");
        assert_eq!(r.len(), 2);
        assert!(r[0].passed, "{r:?}");
        assert!(!r[1].passed, "{r:?}");
    }
}
