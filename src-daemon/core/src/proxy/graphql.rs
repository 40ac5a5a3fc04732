//! The operation type of a GraphQL request body, for rules such as
//! `POST api /graphql mutation`.
//!
//! A body is JSON (`{"query": "…"}`, or a batch of them); its document may
//! define several operations. The rules must not be fooled into reading a
//! mutation as a query, so the answer is the strongest operation defined
//! anywhere in the body (mutation, then subscription, then query), and a
//! body that cannot be read has no operation type (no GraphQL rule
//! matches it).

use crate::config::rules::Operation;

/// The strongest operation type defined in a GraphQL-over-HTTP body.
pub fn operation_of(body: &[u8]) -> Option<Operation> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let docs: Vec<&serde_json::Value> = match &v {
        serde_json::Value::Array(items) if !items.is_empty() => items.iter().collect(),
        serde_json::Value::Object(_) => vec![&v],
        _ => return None,
    };
    let mut strongest = None;
    for d in docs {
        let op = document_operation(d.get("query")?.as_str()?)?;
        strongest = Some(stronger(strongest, op));
    }
    strongest
}

fn rank(o: Operation) -> u8 {
    match o {
        Operation::Query => 0,
        Operation::Subscription => 1,
        Operation::Mutation => 2,
    }
}

fn stronger(a: Option<Operation>, b: Operation) -> Operation {
    match a {
        Some(a) if rank(a) >= rank(b) => a,
        _ => b,
    }
}

/// The strongest operation a document defines, reading only its top
/// level: comments and strings skipped, braces counted.
fn document_operation(doc: &str) -> Option<Operation> {
    let b = doc.as_bytes();
    let (mut i, mut depth, mut found) = (0usize, 0u32, None);
    while i < b.len() {
        match b[i] {
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'"' => i = skip_string(b, i)?,
            b'{' | b'(' | b'[' => {
                if depth == 0 && b[i] == b'{' {
                    found = Some(stronger(found, Operation::Query));
                }
                depth += 1;
            }
            b'}' | b')' | b']' => depth = depth.checked_sub(1)?,
            c if depth == 0 && (c.is_ascii_alphabetic() || c == b'_') => {
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
                match &doc[start..i] {
                    "query" => found = Some(stronger(found, Operation::Query)),
                    "mutation" => found = Some(stronger(found, Operation::Mutation)),
                    "subscription" => found = Some(stronger(found, Operation::Subscription)),
                    _ => {}
                }
                // Skip the rest of the definition's head up to its selection set.
                while i < b.len() && !matches!(b[i], b'{' | b'(' | b'"' | b'#') {
                    i += 1;
                }
                // A named operation's `{` is not a shorthand query.
                if i < b.len() && b[i] == b'{' {
                    depth += 1;
                    i += 1;
                }
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    (depth == 0).then_some(found).flatten()
}

/// The index just past the string starting at `i` (plain or block).
fn skip_string(b: &[u8], i: usize) -> Option<usize> {
    if b[i..].starts_with(b"\"\"\"") {
        let end = b[i + 3..].windows(3).position(|w| w == b"\"\"\"")?;
        return Some(i + 3 + end + 2);
    }
    let mut j = i + 1;
    while j < b.len() {
        match b[j] {
            b'\\' => j += 2,
            b'"' => return Some(j),
            _ => j += 1,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(q: &str) -> Option<Operation> {
        operation_of(serde_json::json!({ "query": q }).to_string().as_bytes())
    }

    #[test]
    fn reads_the_strongest_operation_defined() {
        assert_eq!(op("{ viewer { login } }"), Some(Operation::Query));
        assert_eq!(
            op("query Q($a: Int) { repository(owner: \"o\") { id } }"),
            Some(Operation::Query)
        );
        assert_eq!(
            op("mutation { addStar(input: {}) { clientMutationId } }"),
            Some(Operation::Mutation)
        );
        assert_eq!(
            op("query A { x } mutation B { deleteIssue(input: {}) { x } }"),
            Some(Operation::Mutation),
            "a mutation hidden after a query still counts"
        );
        assert_eq!(
            op("# mutation in a comment\n{ viewer { login } }"),
            Some(Operation::Query)
        );
        assert_eq!(
            op("{ search(query: \"mutation }\") { x } }"),
            Some(Operation::Query)
        );
        assert_eq!(
            op("{ a(b: \"\"\"mutation \"quoted\" }\"\"\") { x } }"),
            Some(Operation::Query)
        );
        assert_eq!(
            op("fragment F on User { login } query { viewer { ...F } }"),
            Some(Operation::Query)
        );
        assert_eq!(op("subscription { x }"), Some(Operation::Subscription));
    }

    #[test]
    fn unreadable_bodies_have_no_operation() {
        assert_eq!(operation_of(b"not json"), None);
        assert_eq!(operation_of(b"{}"), None);
        assert_eq!(op("{ unclosed"), None);
        assert_eq!(op("} {"), None);
        assert_eq!(op("{ a(b: \"open) }"), None);
        let batch = serde_json::json!([{ "query": "{ a }" }, { "query": "mutation { b }" }]);
        assert_eq!(
            operation_of(batch.to_string().as_bytes()),
            Some(Operation::Mutation)
        );
        assert_eq!(operation_of(b"[]"), None);
    }
}
