//! The one error type the webview sees.
//!
//! It serializes as `{kind, code, name, message}` so the frontend can show
//! the daemon's own message (which says what to do next) and branch on the
//! stable error name, never on message text.

use serde::ser::SerializeStruct;
use valetkey_ipc::ClientError;

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum UiError {
    /// No connection to valetkeyd.
    #[error("valetkeyd is not running ({reason}); press Start or run `valetkeyd`")]
    DaemonDown {
        /// What the last connection attempt said.
        reason: String,
    },
    /// The daemon refused the request.
    #[error("{message}")]
    Daemon {
        /// The protocol's numeric code.
        code: i64,
        /// The stable name (`session_locked`, `not_found`, …).
        name: String,
        /// The daemon's message.
        message: String,
    },
    /// Starting the daemon failed.
    #[error("could not start valetkeyd: {0}")]
    Launch(String),
    /// Anything else between the app and the daemon.
    #[error("{0}")]
    Protocol(String),
}

impl UiError {
    pub fn protocol(e: impl std::fmt::Display) -> Self {
        UiError::Protocol(e.to_string())
    }

    fn kind(&self) -> &'static str {
        match self {
            UiError::DaemonDown { .. } => "daemon_down",
            UiError::Daemon { .. } => "daemon",
            UiError::Launch(_) => "launch",
            UiError::Protocol(_) => "protocol",
        }
    }
}

impl From<ClientError> for UiError {
    fn from(e: ClientError) -> Self {
        match e.rpc() {
            Some(rpc) => UiError::Daemon {
                code: rpc.code,
                name: rpc.name().to_owned(),
                message: rpc.message.clone(),
            },
            None => UiError::Protocol(e.to_string()),
        }
    }
}

impl serde::Serialize for UiError {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (code, name) = match self {
            UiError::Daemon { code, name, .. } => (Some(*code), Some(name.as_str())),
            _ => (None, None),
        };
        let mut st = s.serialize_struct("UiError", 4)?;
        st.serialize_field("kind", self.kind())?;
        st.serialize_field("code", &code)?;
        st.serialize_field("name", &name)?;
        st.serialize_field("message", &self.to_string())?;
        st.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use valetkey_ipc::error::{ErrorCode, RpcError};

    #[test]
    fn daemon_errors_keep_code_name_and_message() {
        let e = UiError::from(ClientError::Rpc(RpcError::new(
            ErrorCode::SessionLocked,
            "unlock the session to decide",
        )));
        let v = serde_json::to_value(&e).expect("serialize");
        assert_eq!(v["kind"], "daemon");
        assert_eq!(v["name"], "session_locked");
        assert_eq!(v["code"], 4000);
        assert_eq!(v["message"], "unlock the session to decide");
    }

    #[test]
    fn daemon_down_says_what_to_do() {
        let v = serde_json::to_value(UiError::DaemonDown {
            reason: "cannot reach /run/x".into(),
        })
        .expect("serialize");
        assert_eq!(v["kind"], "daemon_down");
        assert!(v["code"].is_null());
        assert!(v["message"].as_str().unwrap_or_default().contains("Start"));
    }
}
