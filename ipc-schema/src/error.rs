//! Stable, named error codes.
//!
//! Agents branch on these, so a code's number and name never change once
//! published; new ones are only ever added. Every error also carries a
//! message written for a person: what happened and what to do next.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

macro_rules! error_codes {
    ($( $(#[doc = $doc:literal])* $variant:ident = ($code:literal, $name:literal), )*) => {
        /// Every error the daemon can return, with its wire number and name.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum ErrorCode {
            $( $(#[doc = $doc])* $variant, )*
        }

        impl ErrorCode {
            /// All codes, in wire-number order of declaration.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The JSON-RPC `error.code` number.
            pub const fn code(self) -> i64 {
                match self { $(ErrorCode::$variant => $code,)* }
            }

            /// The stable name, also sent as `error.data.name`.
            pub const fn name(self) -> &'static str {
                match self { $(ErrorCode::$variant => $name,)* }
            }

            /// One line describing when the code is used (for docs and schema).
            pub fn description(self) -> &'static str {
                match self { $(ErrorCode::$variant => concat!($($doc),*).trim_ascii(),)* }
            }

            /// Looks a code up by its wire number.
            pub fn from_code(code: i64) -> Option<Self> {
                match code { $($code => Some(ErrorCode::$variant),)* _ => None }
            }
        }
    };
}

error_codes! {
    /// The frame was not valid JSON (or not UTF-8).
    ParseError = (-32700, "parse_error"),
    /// The JSON was not a valid JSON-RPC 2.0 request.
    BadRequest = (-32600, "bad_request"),
    /// No method of that name exists.
    UnknownMethod = (-32601, "unknown_method"),
    /// The params did not match the method's schema.
    InvalidParams = (-32602, "invalid_params"),
    /// A bug or unexpected failure inside the daemon; nothing was issued.
    Internal = (-32603, "internal"),
    /// `hello` carried a protocol version this daemon does not speak.
    ProtocolMismatch = (1000, "protocol_mismatch"),
    /// A method other than `hello` was called before `hello`.
    HelloRequired = (1001, "hello_required"),
    /// A frame exceeded 65,536 bytes; the connection is closed.
    FrameTooLarge = (1002, "frame_too_large"),
    /// The peer process could not be identified or is another user.
    PeerRejected = (1003, "peer_rejected"),
    /// `hello` was sent twice on one connection.
    AlreadyGreeted = (1004, "already_greeted"),
    /// The connection sent requests faster than its limit; slow down (see `data.retry_after_ms`).
    RateLimited = (1005, "rate_limited"),
    /// The daemon already serves its maximum number of connections; close idle ones and retry.
    TooManyConnections = (1006, "too_many_connections"),
    /// A frame was started but not finished in time (a stalled or slowloris client); the connection is closed.
    FrameTimeout = (1007, "frame_timeout"),
    /// The process that opened the connection is gone (its pid exited or was reused); reconnect from the agent itself.
    PeerChanged = (1008, "peer_changed"),
    /// No grant covers this agent, binary, provider and scopes yet.
    ConsentRequired = (2000, "consent_required"),
    /// The user refused the request.
    ConsentDenied = (2001, "consent_denied"),
    /// Some requested scopes are outside what the agent was granted.
    ScopeNotGranted = (2002, "scope_not_granted"),
    /// No provider of that name is configured.
    UnknownProvider = (2003, "unknown_provider"),
    /// Some requested scopes are outside what the provider config allows.
    ScopeNotAllowed = (2004, "scope_not_allowed"),
    /// The agent is suspended.
    AgentSuspended = (2005, "agent_suspended"),
    /// The agent asked for too many consents too quickly; the user was told.
    ConsentRateLimited = (2006, "consent_rate_limited"),
    /// The user is away (session locked) and the config refuses consents then.
    UserAway = (2007, "user_away"),
    /// Nobody decided within the consent timeout; nothing was granted.
    ConsentTimeout = (2008, "consent_timeout"),
    /// The user paused all issuing; `valetkey resume` or the tray resumes it.
    IssuingPaused = (2009, "issuing_paused"),
    /// No pending or recently decided consent has that id for this agent.
    UnknownConsent = (2010, "unknown_consent"),
    /// A policy refused the request; `data.rule` and `data.reasons` say which and why.
    PolicyDenied = (2011, "policy_denied"),
    /// The agent is deprecated: it keeps no grants and gets nothing new.
    AgentDeprecated = (2012, "agent_deprecated"),
    /// The delegation token is not valid (signature, algorithm, key, audience, subject, expiry or format); `data.reason` says which.
    DelegationInvalid = (2013, "delegation_invalid"),
    /// The delegation token, an ancestor's token, or the root grant was revoked, or an agent in the chain was suspended.
    DelegationRevoked = (2014, "delegation_revoked"),
    /// The delegation asked for more than the caller has (time, depth or provider); `data.reason` says which.
    DelegationRefused = (2015, "delegation_refused"),
    /// The provider is listed in `[policy] require_confinement` and the agent is not in a box; start it with `valetkey run`.
    ConfinementRequired = (2016, "confinement_required"),
    /// The egress proxy refused a request no scope the box holds allows; `data.would_allow` names the scopes that would.
    RequestNotGranted = (2017, "request_not_granted"),
    /// The egress proxy refused a host the box's profile does not let it reach; add it to the profile's `hosts`.
    HostNotAllowed = (2018, "host_not_allowed"),
    /// Pushed (`id: null`) before a connection is closed because the user revoked a grant its agent held; the agent stays active: reconnect and ask again.
    GrantRevoked = (2019, "grant_revoked"),
    /// The egress proxy refused a request whose path it cannot match one way only (a `.` or `..` segment, an encoded dot, slash or backslash, an empty segment); send the plain path.
    RequestMalformed = (2020, "request_malformed"),
    /// No raw token for this caller: it is a box whose egress proxy writes the provider's token in (it gets placeholders), or the grant was given for such a box; send the request through the proxy.
    ProxyOnly = (2021, "proxy_only"),
    /// The OS keychain is locked; unlock it and retry.
    KeychainLocked = (3000, "keychain_locked"),
    /// No OS keychain (Secret Service) is reachable.
    KeychainUnavailable = (3001, "keychain_unavailable"),
    /// The identity provider is down, slow or failing; retry later.
    ProviderUnavailable = (3002, "provider_unavailable"),
    /// The provider has no valid login (never logged in, or the grant was revoked).
    ProviderLoginRequired = (3003, "provider_login_required"),
    /// The provider refused the request for another reason.
    ProviderRejected = (3004, "provider_rejected"),
    /// The daemon's state database failed; nothing was issued.
    StateUnavailable = (3005, "state_unavailable"),
    /// No valid policy is loaded, or it failed to evaluate; nothing is issued (fail closed).
    PolicyUnavailable = (3006, "policy_unavailable"),
    /// The audit record could not be written (disk full, database locked or damaged); nothing was issued (fail closed).
    AuditUnavailable = (3007, "audit_unavailable"),
    /// Control socket: the session is locked, so no consent can be given.
    SessionLocked = (4000, "session_locked"),
    /// Control socket: no agent, grant or consent matches.
    NotFound = (4001, "not_found"),
}

/// A JSON-RPC error object as it appears on the wire.
///
/// `data.name` always holds the stable name of `code`; further `data` fields
/// depend on the code and are documented in `PROTOCOL.md`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, thiserror::Error)]
#[error("{message} ({})", self.name())]
pub struct RpcError {
    /// The numeric code; see [`ErrorCode`].
    pub code: i64,
    /// A message for a person, saying what to do next.
    pub message: String,
    /// Always an object with at least `name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
}

impl RpcError {
    /// An error with a code and a message, and `data.name` filled in.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code: code.code(),
            message: message.into(),
            data: Some(serde_json::json!({ "name": code.name() })),
        }
    }

    /// Adds a field to `data`.
    pub fn with(mut self, key: &str, value: impl Serialize) -> Self {
        let value = serde_json::to_value(value).unwrap_or(serde_json::Value::Null);
        if let Some(serde_json::Value::Object(map)) = self.data.as_mut() {
            map.insert(key.to_owned(), value);
        }
        self
    }

    /// The typed code, if this build knows it.
    pub fn kind(&self) -> Option<ErrorCode> {
        ErrorCode::from_code(self.code)
    }

    /// The stable name, or `"unknown"` for a code this build does not know.
    pub fn name(&self) -> &str {
        self.kind().map(ErrorCode::name).unwrap_or("unknown")
    }

    /// A `data` field, if present.
    pub fn data_field(&self, key: &str) -> Option<&serde_json::Value> {
        self.data.as_ref()?.get(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn codes_and_names_are_unique_and_round_trip() {
        let mut codes = HashSet::new();
        let mut names = HashSet::new();
        for c in ErrorCode::ALL {
            assert!(codes.insert(c.code()), "duplicate code {}", c.code());
            assert!(names.insert(c.name()), "duplicate name {}", c.name());
            assert_eq!(ErrorCode::from_code(c.code()), Some(*c));
            let json = serde_json::to_string(c).expect("serializes");
            assert_eq!(json, format!("\"{}\"", c.name()));
            assert!(!c.description().is_empty());
        }
    }

    #[test]
    fn published_numbers_never_change() {
        // Agents in the wild branch on these numbers.
        assert_eq!(ErrorCode::ConsentRequired.code(), 2000);
        assert_eq!(ErrorCode::ScopeNotGranted.code(), 2002);
        assert_eq!(ErrorCode::KeychainLocked.code(), 3000);
        assert_eq!(ErrorCode::FrameTooLarge.code(), 1002);
        assert_eq!(ErrorCode::UnknownMethod.code(), -32601);
    }

    #[test]
    fn error_carries_name_in_data() {
        let e = RpcError::new(ErrorCode::UnknownProvider, "no provider 'x'").with("provider", "x");
        let v = serde_json::to_value(&e).expect("serializes");
        assert_eq!(v["data"]["name"], "unknown_provider");
        assert_eq!(v["data"]["provider"], "x");
        assert_eq!(e.name(), "unknown_provider");
    }
}
