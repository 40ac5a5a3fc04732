//! Request rules: what each scope of a provider lets a boxed agent do
//! through the proxy, as data (`[providers.NAME.proxy.rules]`, with the
//! presets' rules underneath).
//!
//! A rule is one line: methods, a host role, a path pattern and, where
//! it matters, a query parameter or a GraphQL operation type:
//!
//! ```text
//! GET api /repos/{owner}/{repo}/contents/**
//! GET git /{owner}/{repo}.git/info/refs?service=git-upload-pack
//! PUT|DELETE api /repos/{owner}/{repo}/contents/**
//! POST api /graphql mutation
//! +contents:read
//! ```
//!
//! `{name}` is one path segment (with a literal prefix or suffix around it
//! allowed, as in `{repo}.git`), `*` one segment of any name, `**` any
//! number of segments (none too). `GET` also allows `HEAD`. A line
//! `+SCOPE` takes in every rule of another scope. A grant's scope may
//! name one repository, `contents:read@owner/repo`: then only rules that
//! capture `{owner}` and `{repo}` apply, and only for that repository.

use std::collections::BTreeMap;

/// A GraphQL operation type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// `query` (and the `{ … }` shorthand).
    Query,
    /// `mutation`.
    Mutation,
    /// `subscription`.
    Subscription,
}

impl Operation {
    fn parse(s: &str) -> Option<Operation> {
        match s {
            "query" => Some(Operation::Query),
            "mutation" => Some(Operation::Mutation),
            "subscription" => Some(Operation::Subscription),
            _ => None,
        }
    }
}

/// One segment of a path pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    /// Exactly this text.
    Lit(String),
    /// `prefix{name}suffix`.
    Var {
        prefix: String,
        name: String,
        suffix: String,
    },
    /// `*`.
    Any,
    /// `**` (last only).
    Rest,
}

/// One rule line, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// The line as written (what refusals and audit records name).
    pub text: String,
    methods: Vec<String>,
    role: String,
    path: Vec<Seg>,
    query: Option<(String, String)>,
    graphql: Option<Operation>,
}

/// What the rules look at in a request. No header, no body but the
/// GraphQL operation type.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// The method, upper case.
    pub method: &'a str,
    /// The host's role (`api`, `git`).
    pub role: &'a str,
    /// The path, without the query.
    pub path: &'a str,
    /// The query string (without `?`), or empty.
    pub query: &'a str,
    /// For a GraphQL request, the operation type of its document.
    pub graphql: Option<Operation>,
}

/// The path's `{name}` captures.
pub type Captures = BTreeMap<String, String>;

impl Rule {
    /// Parses one line; `roles` are the provider's host roles.
    pub fn parse(line: &str, roles: &[&str]) -> Result<Rule, String> {
        let bad = |why: &str| format!("rule {line:?}: {why}");
        let words: Vec<&str> = line.split_whitespace().collect();
        let (methods, role, target, extra) = match words.as_slice() {
            [m, r, t] => (m, r, t, None),
            [m, r, t, e] => (m, r, t, Some(*e)),
            _ => {
                return Err(bad(
                    "write METHOD[|METHOD] ROLE /PATH[?k=v] [query|mutation|subscription]",
                ))
            }
        };
        if !roles.contains(role) {
            return Err(bad(&format!(
                "unknown host role {role:?}; roles: {}",
                roles.join(", ")
            )));
        }
        let methods: Vec<String> = methods.split('|').map(str::to_ascii_uppercase).collect();
        if methods
            .iter()
            .any(|m| m.is_empty() || !m.bytes().all(|b| b.is_ascii_uppercase()))
        {
            return Err(bad("methods are words like GET or PUT|DELETE"));
        }
        let graphql =
            match extra {
                None => None,
                Some(e) => Some(Operation::parse(e).ok_or_else(|| {
                    bad("the fourth word must be query, mutation or subscription")
                })?),
            };
        let (path, query) = match target.split_once('?') {
            None => (*target, None),
            Some((p, q)) => {
                let (k, v) = q
                    .split_once('=')
                    .ok_or_else(|| bad("write the query as ?name=value"))?;
                (p, Some((k.to_owned(), v.to_owned())))
            }
        };
        Ok(Rule {
            text: line.split_whitespace().collect::<Vec<_>>().join(" "),
            methods,
            role: (*role).to_owned(),
            path: parse_path(path).map_err(|w| bad(&w))?,
            query,
            graphql,
        })
    }

    /// The captures if `t` matches this rule.
    pub fn matches(&self, t: &Target<'_>) -> Option<Captures> {
        let method_ok = self
            .methods
            .iter()
            .any(|m| m == t.method || (m == "GET" && t.method == "HEAD"));
        if !method_ok || self.role != t.role {
            return None;
        }
        if let Some((k, v)) = &self.query {
            if crate::proxy::canonical::only_value(t.query, k).as_deref() != Some(v.as_str()) {
                return None;
            }
        }
        if let Some(op) = self.graphql {
            if t.graphql != Some(op) {
                return None;
            }
        }
        match_path(&self.path, t.path)
    }

    /// Whether the rule needs the GraphQL operation type of the body.
    pub fn reads_graphql(&self) -> bool {
        self.graphql.is_some()
    }
}

fn parse_path(p: &str) -> Result<Vec<Seg>, String> {
    let rest = p.strip_prefix('/').ok_or("the path must start with /")?;
    let parts: Vec<&str> = if rest.is_empty() {
        vec![]
    } else {
        rest.split('/').collect()
    };
    let mut segs = vec![];
    for (i, part) in parts.iter().enumerate() {
        let seg = match *part {
            "**" if i + 1 == parts.len() => Seg::Rest,
            "**" => return Err("** may only end a path".into()),
            "*" => Seg::Any,
            _ => match part.split_once('{') {
                None => Seg::Lit((*part).to_owned()),
                Some((prefix, tail)) => {
                    let (name, suffix) = tail.split_once('}').ok_or("an unclosed {")?;
                    if name.is_empty()
                        || suffix.contains('{')
                        || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                    {
                        return Err(format!("bad capture in {part:?}"));
                    }
                    Seg::Var {
                        prefix: prefix.into(),
                        name: name.into(),
                        suffix: suffix.into(),
                    }
                }
            },
        };
        segs.push(seg);
    }
    Ok(segs)
}

fn match_path(pattern: &[Seg], path: &str) -> Option<Captures> {
    let rest = path.strip_prefix('/')?;
    let mut parts = rest.split('/').filter(|_| !rest.is_empty());
    let mut caps = Captures::new();
    for seg in pattern {
        if *seg == Seg::Rest {
            return Some(caps);
        }
        let part = parts.next()?;
        match seg {
            Seg::Lit(l) if l == part => {}
            Seg::Any if !part.is_empty() => {}
            Seg::Var {
                prefix,
                name,
                suffix,
            } => {
                let v = part
                    .strip_prefix(prefix.as_str())?
                    .strip_suffix(suffix.as_str())?;
                if v.is_empty() || v == "." || v == ".." {
                    return None;
                }
                caps.insert(name.clone(), v.to_owned());
            }
            _ => return None,
        }
    }
    parts.next().is_none().then_some(caps)
}

/// A grant's scope as the rules read it: the scope, and the one
/// repository it is limited to (`scope@owner/repo`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Granted<'a> {
    /// The scope without the repository.
    pub scope: &'a str,
    /// `(owner, repo)`, if limited.
    pub repo: Option<(&'a str, &'a str)>,
}

impl<'a> Granted<'a> {
    /// Reads `scope` or `scope@owner/repo`.
    pub fn parse(s: &'a str) -> Granted<'a> {
        match s
            .split_once('@')
            .and_then(|(sc, r)| Some((sc, r.split_once('/')?)))
        {
            Some((scope, (o, r))) if !o.is_empty() && !r.is_empty() && !r.contains('/') => {
                Granted {
                    scope,
                    repo: Some((o, r)),
                }
            }
            _ => Granted {
                scope: s,
                repo: None,
            },
        }
    }

    /// Whether captures `caps` are within this grant's repository.
    fn covers(&self, caps: &Captures) -> bool {
        match self.repo {
            None => true,
            Some((o, r)) => {
                let same =
                    |k: &str, v: &str| caps.get(k).is_some_and(|c| c.eq_ignore_ascii_case(v));
                same("owner", o) && same("repo", r)
            }
        }
    }
}

/// A provider's rules by scope, with `+SCOPE` lines taken in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleSet {
    by_scope: BTreeMap<String, Vec<Rule>>,
}

impl RuleSet {
    /// Parses `lines` by scope, checking roles and resolving `+SCOPE`
    /// (one level deeper at a time, no cycles).
    pub fn parse(lines: &BTreeMap<String, Vec<String>>, roles: &[&str]) -> Result<RuleSet, String> {
        let mut by_scope = BTreeMap::new();
        for scope in lines.keys() {
            let mut out = vec![];
            let mut seen = vec![scope.clone()];
            collect(lines, scope, roles, &mut seen, &mut out)?;
            by_scope.insert(scope.clone(), out);
        }
        Ok(RuleSet { by_scope })
    }

    /// Whether any rule captures `{repo}` (the provider has repositories).
    pub fn names_repositories(&self) -> bool {
        self.by_scope.values().flatten().any(|r| {
            r.path
                .iter()
                .any(|s| matches!(s, Seg::Var { name, .. } if name == "repo"))
        })
    }

    /// The scopes that have rules.
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.by_scope.keys().map(String::as_str)
    }

    /// Whether any rule of this set looks at GraphQL operation types on
    /// `role` and `path`.
    pub fn reads_graphql(&self, role: &str, path: &str) -> bool {
        let t = Target {
            method: "POST",
            role,
            path,
            query: "",
            graphql: None,
        };
        self.by_scope.values().flatten().any(|r| {
            r.reads_graphql() && {
                let mut r = r.clone();
                r.graphql = None;
                r.matches(&t).is_some()
            }
        })
    }

    /// The first rule of `granted` (scopes as in a grant) that allows `t`.
    pub fn allows<'r>(&'r self, granted: &[String], t: &Target<'_>) -> Option<&'r Rule> {
        granted.iter().find_map(|g| {
            let g = Granted::parse(g);
            self.by_scope
                .get(g.scope)?
                .iter()
                .find(|r| r.matches(t).is_some_and(|c| g.covers(&c)))
        })
    }

    /// The scopes (with the repository, where the rule names one) that
    /// would allow `t`: what a refusal suggests.
    pub fn would_allow(&self, t: &Target<'_>) -> Vec<String> {
        self.allowing(t).map(|(s, _)| s).collect()
    }

    /// Of the scopes that would allow `t` and pass `wanted` (given the
    /// scope without its repository), the narrowest: the one with the
    /// fewest rules, so `contents:read` before `contents:write`.
    pub fn narrowest(&self, t: &Target<'_>, wanted: impl Fn(&str) -> bool) -> Option<String> {
        self.allowing(t)
            .filter(|(s, _)| wanted(Granted::parse(s).scope))
            .min_by_key(|(_, n)| *n)
            .map(|(s, _)| s)
    }

    /// Each scope that would allow `t`, bound to the repository where
    /// the rule names one, with its number of rules.
    fn allowing<'s>(&'s self, t: &'s Target<'_>) -> impl Iterator<Item = (String, usize)> + 's {
        self.by_scope.iter().filter_map(move |(scope, rules)| {
            let c = rules.iter().find_map(|r| r.matches(t))?;
            let s = match (c.get("owner"), c.get("repo")) {
                (Some(o), Some(r)) => format!("{scope}@{o}/{r}"),
                _ => scope.clone(),
            };
            Some((s, rules.len()))
        })
    }
}

fn collect(
    lines: &BTreeMap<String, Vec<String>>,
    scope: &str,
    roles: &[&str],
    seen: &mut Vec<String>,
    out: &mut Vec<Rule>,
) -> Result<(), String> {
    for line in &lines[scope] {
        match line.trim().strip_prefix('+') {
            Some(other) => {
                if !lines.contains_key(other) {
                    return Err(format!(
                        "rules of {scope:?}: +{other} names no scope with rules"
                    ));
                }
                if seen.iter().any(|s| s == other) {
                    continue;
                }
                seen.push(other.to_owned());
                collect(lines, other, roles, seen, out)?;
            }
            None => {
                out.push(Rule::parse(line, roles).map_err(|e| format!("rules of {scope:?}: {e}"))?)
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROLES: &[&str] = &["api", "git"];

    fn t<'a>(method: &'a str, role: &'a str, path: &'a str, query: &'a str) -> Target<'a> {
        Target {
            method,
            role,
            path,
            query,
            graphql: None,
        }
    }

    fn set(pairs: &[(&str, &[&str])]) -> RuleSet {
        let lines = pairs
            .iter()
            .map(|(s, ls)| (s.to_string(), ls.iter().map(|l| l.to_string()).collect()))
            .collect();
        RuleSet::parse(&lines, ROLES).expect("parses")
    }

    #[test]
    fn paths_match_segments_captures_and_rest() {
        let r = Rule::parse("GET api /repos/{owner}/{repo}/contents/**", ROLES).expect("ok");
        let c = r
            .matches(&t("GET", "api", "/repos/o/r/contents/a/b.txt", ""))
            .expect("match");
        assert_eq!((c["owner"].as_str(), c["repo"].as_str()), ("o", "r"));
        assert!(
            r.matches(&t("HEAD", "api", "/repos/o/r/contents", ""))
                .is_some(),
            "** matches nothing too; HEAD is a GET"
        );
        assert!(r
            .matches(&t("PUT", "api", "/repos/o/r/contents/x", ""))
            .is_none());
        assert!(r
            .matches(&t("GET", "git", "/repos/o/r/contents/x", ""))
            .is_none());
        assert!(r
            .matches(&t("GET", "api", "/repos/o/r/issues", ""))
            .is_none());
        assert!(r.matches(&t("GET", "api", "/repos/o", "")).is_none());
        let g = Rule::parse("POST git /{owner}/{repo}.git/git-upload-pack", ROLES).expect("ok");
        assert_eq!(
            g.matches(&t("POST", "git", "/o/r.git/git-upload-pack", ""))
                .expect("m")["repo"],
            "r"
        );
        assert!(g
            .matches(&t("POST", "git", "/o/.git/git-upload-pack", ""))
            .is_none());
        assert!(g
            .matches(&t("POST", "git", "/o/r/git-upload-pack", ""))
            .is_none());
        assert!(g
            .matches(&t("POST", "git", "/o/r.git/git-upload-pack/x", ""))
            .is_none());
    }

    #[test]
    fn queries_and_graphql_operations_are_part_of_a_rule() {
        let r = Rule::parse(
            "GET git /{owner}/{repo}.git/info/refs?service=git-upload-pack",
            ROLES,
        )
        .expect("ok");
        assert!(r
            .matches(&t(
                "GET",
                "git",
                "/o/r.git/info/refs",
                "service=git-upload-pack"
            ))
            .is_some());
        assert!(r
            .matches(&t(
                "GET",
                "git",
                "/o/r.git/info/refs",
                "a=1&service=git-upload-pack"
            ))
            .is_some());
        assert!(r
            .matches(&t(
                "GET",
                "git",
                "/o/r.git/info/refs",
                "service=git-receive-pack"
            ))
            .is_none());
        assert!(r
            .matches(&t("GET", "git", "/o/r.git/info/refs", ""))
            .is_none());
        let q = Rule::parse("POST api /graphql query", ROLES).expect("ok");
        let mut tq = t("POST", "api", "/graphql", "");
        assert!(q.matches(&tq).is_none(), "no operation known: no match");
        tq.graphql = Some(Operation::Query);
        assert!(q.matches(&tq).is_some());
        tq.graphql = Some(Operation::Mutation);
        assert!(q.matches(&tq).is_none());
    }

    #[test]
    fn bad_lines_say_what_to_write() {
        for (line, want) in [
            ("GET /x", "write METHOD"),
            ("GET web /x", "unknown host role"),
            ("get api x", "must start with /"),
            ("GET api /a/**/b", "may only end"),
            ("GET api /a/{x", "unclosed"),
            ("GET api /a?x", "?name=value"),
            (
                "POST api /graphql delete",
                "query, mutation or subscription",
            ),
            ("G3T api /x", "methods are words"),
        ] {
            let e = Rule::parse(line, ROLES).expect_err(line);
            assert!(e.contains(want), "{line}: {e}");
        }
        let mut lines = BTreeMap::new();
        lines.insert("a".to_string(), vec!["+b".to_string()]);
        let e = RuleSet::parse(&lines, ROLES).expect_err("dangling include");
        assert!(e.contains("+b names no scope"), "{e}");
    }

    #[test]
    fn grants_allow_their_rules_and_includes_and_only_their_repository() {
        let s = set(&[
            (
                "contents:read",
                &["GET api /repos/{owner}/{repo}/contents/**", "GET api /user"],
            ),
            (
                "contents:write",
                &[
                    "+contents:read",
                    "PUT api /repos/{owner}/{repo}/contents/**",
                ],
            ),
            ("loop", &["+loop2"]),
            ("loop2", &["+loop", "GET api /x"]),
        ]);
        let put = t("PUT", "api", "/repos/o/r/contents/f", "");
        let get = t("GET", "api", "/repos/o/r/contents/f", "");
        let read = vec!["contents:read".to_string()];
        let write = vec!["contents:write".to_string()];
        assert!(s.allows(&read, &put).is_none());
        assert_eq!(
            s.allows(&write, &get).expect("included").text,
            "GET api /repos/{owner}/{repo}/contents/**"
        );
        assert!(s.allows(&write, &put).is_some());
        assert_eq!(s.would_allow(&put), vec!["contents:write@o/r"]);
        assert_eq!(
            s.would_allow(&get),
            vec!["contents:read@o/r", "contents:write@o/r"]
        );
        assert_eq!(
            s.narrowest(&get, |_| true).as_deref(),
            Some("contents:read@o/r"),
            "the scope with fewer rules"
        );
        assert_eq!(
            s.narrowest(&get, |x| x != "contents:read").as_deref(),
            Some("contents:write@o/r"),
            "only scopes the provider allows"
        );
        assert!(s
            .narrowest(&t("GET", "api", "/nothing", ""), |_| true)
            .is_none());
        let mine = vec!["contents:read@O/R".to_string()];
        assert!(
            s.allows(&mine, &get).is_some(),
            "owner and repo compare without case"
        );
        assert!(s
            .allows(&mine, &t("GET", "api", "/repos/o/other/contents/f", ""))
            .is_none());
        assert!(
            s.allows(&mine, &t("GET", "api", "/user", "")).is_none(),
            "a repository grant takes only rules about a repository"
        );
        assert!(s.allows(&read, &t("GET", "api", "/user", "")).is_some());
        assert!(
            s.allows(&["loop".to_string()], &t("GET", "api", "/x", ""))
                .is_some(),
            "cycles end"
        );
        assert!(!s.reads_graphql("api", "/graphql"));
    }
}
