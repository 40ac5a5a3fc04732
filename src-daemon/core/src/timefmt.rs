//! Times as people read them: RFC 3339 in UTC, whatever the local zone.

/// Formats Unix seconds as an RFC 3339 UTC timestamp, or "never".
pub fn when(t: Option<i64>) -> String {
    match t {
        Some(t) if t > 0 => humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(t as u64),
        )
        .to_string(),
        _ => "never".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_whatever_the_zone() {
        assert_eq!(
            when(Some(crate::clock::fixed::FRIDAY_NIGHT)),
            "2026-11-27T23:59:00Z"
        );
        assert_eq!(
            (when(None), when(Some(0))),
            ("never".into(), "never".into())
        );
    }
}
