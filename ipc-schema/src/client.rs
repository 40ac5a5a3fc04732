//! An async client for Rust agents.
//!
//! ```no_run
//! # async fn run() -> Result<(), valetkey_ipc::ClientError> {
//! use valetkey_ipc::{Client, methods::AgentInfo};
//! let mut client = Client::connect_default().await?;
//! client.hello(AgentInfo { name: "my-agent".into(), version: "1.0".into(),
//!     purpose: "triage issues".into() }).await?;
//! let token = client.token("github", &["repo:read"]).await?;
//! println!("expires at {}", token.expires_at);
//! # Ok(()) }
//! ```

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use interprocess::local_socket::{tokio::prelude::*, tokio::Stream, GenericFilePath};
use serde_json::Value;
use tokio_util::codec::Framed;

use crate::codec::{FrameCodec, FrameError};
use crate::control::{Event, EVENT_METHOD};
use crate::error::RpcError;
use crate::jsonrpc::{Id, Response};
use crate::methods::{
    AgentInfo, Hello, HelloParams, HelloResult, Method, TokenGet, TokenGetParams, TokenGetResult,
};
use crate::secret::DelegationToken;
use crate::PROTOCOL_VERSION;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The socket could not be reached.
    #[error("cannot connect to valetkeyd at {path}: {source}; {how}")]
    Connect {
        /// The socket path tried.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
        /// How the path was found, and the fix ([`crate::paths::how_found`]).
        how: String,
    },
    /// Framing failed (oversized frame, socket error).
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The daemon answered with an error.
    #[error(transparent)]
    Rpc(#[from] RpcError),
    /// The daemon closed the connection.
    #[error("valetkeyd closed the connection")]
    Closed,
    /// The daemon sent something that is not a valid response.
    #[error("invalid response from valetkeyd: {0}")]
    Protocol(String),
}

impl ClientError {
    /// The RPC error, if the daemon answered with one.
    pub fn rpc(&self) -> Option<&RpcError> {
        match self {
            ClientError::Rpc(e) => Some(e),
            _ => None,
        }
    }
}

/// One connection to the agent socket.
pub struct Client {
    framed: Framed<Stream, FrameCodec>,
    next_id: i64,
    /// Events pushed by the daemon (control socket) that arrived while a
    /// call was waiting for its response.
    events: VecDeque<Value>,
}

impl Client {
    /// Connects to the socket at `path`.
    pub async fn connect(path: impl AsRef<Path>) -> Result<Self, ClientError> {
        let path = path.as_ref();
        let connect_err = |source| ClientError::Connect {
            path: path.to_owned(),
            source,
            how: crate::paths::how_found(path),
        };
        let name = path.to_fs_name::<GenericFilePath>().map_err(connect_err)?;
        let stream = Stream::connect(name).await.map_err(connect_err)?;
        Ok(Self {
            framed: Framed::new(stream, FrameCodec::default()),
            next_id: 1,
            events: VecDeque::new(),
        })
    }

    /// Connects to the default socket ([`crate::paths::agent_socket_path`]).
    pub async fn connect_default() -> Result<Self, ClientError> {
        Self::connect(crate::paths::agent_socket_path()).await
    }

    /// Says who this agent is. Must be the first call.
    pub async fn hello(&mut self, agent: AgentInfo) -> Result<HelloResult, ClientError> {
        self.call::<Hello>(&HelloParams {
            protocol: PROTOCOL_VERSION,
            agent,
            delegation: None,
        })
        .await
    }

    /// Says hello as a sub-agent, presenting the delegation token its parent
    /// got from `delegation.create`.
    pub async fn hello_delegated(
        &mut self,
        agent: AgentInfo,
        token: DelegationToken,
    ) -> Result<HelloResult, ClientError> {
        self.call::<Hello>(&HelloParams {
            protocol: PROTOCOL_VERSION,
            agent,
            delegation: Some(token),
        })
        .await
    }

    /// Asks for a token for `scopes` at `provider`.
    pub async fn token(
        &mut self,
        provider: &str,
        scopes: &[&str],
    ) -> Result<TokenGetResult, ClientError> {
        self.call::<TokenGet>(&TokenGetParams::new(provider, scopes))
            .await
    }

    /// Calls a typed method.
    pub async fn call<M: Method>(&mut self, params: &M::Params) -> Result<M::Result, ClientError> {
        let params =
            serde_json::to_value(params).map_err(|e| ClientError::Protocol(e.to_string()))?;
        let value = self.call_raw(M::NAME, params).await?;
        serde_json::from_value(value).map_err(|e| ClientError::Protocol(e.to_string()))
    }

    /// Calls a method by name with raw JSON params.
    pub async fn call_raw(&mut self, method: &str, params: Value) -> Result<Value, ClientError> {
        let id = self.next_id;
        self.next_id += 1;
        let req =
            serde_json::json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        if let Err(e) = self.send_frame(Bytes::from(req.to_string())).await {
            // The daemon may have refused the connection and closed it
            // before our write landed; its reason is still readable.
            let pending =
                tokio::time::timeout(std::time::Duration::from_secs(1), self.recv_response()).await;
            if let Ok(Ok(Response {
                error: Some(err), ..
            })) = pending
            {
                return Err(ClientError::Rpc(err));
            }
            return Err(e);
        }
        let resp = self.recv_response().await?;
        // An error with id null is about the connection itself (for example
        // `peer_rejected` or `frame_too_large`): surface it as such.
        if let (None, Some(e)) = (&resp.id, &resp.error) {
            return Err(ClientError::Rpc(e.clone()));
        }
        if resp.id != Some(Id::Num(id)) {
            return Err(ClientError::Protocol(format!(
                "response id {:?} does not match request id {id}",
                resp.id
            )));
        }
        match (resp.result, resp.error) {
            (_, Some(e)) => Err(ClientError::Rpc(e)),
            (Some(r), None) => Ok(r),
            (None, None) => Err(ClientError::Protocol("neither result nor error".into())),
        }
    }

    /// Sends one raw frame (without the newline). For tests and tools.
    pub async fn send_frame(&mut self, frame: Bytes) -> Result<(), ClientError> {
        self.framed.send(frame).await?;
        Ok(())
    }

    /// Reads the next response frame, setting pushed events aside.
    pub async fn recv_response(&mut self) -> Result<Response, ClientError> {
        loop {
            let frame = self.framed.next().await.ok_or(ClientError::Closed)??;
            let v: Value =
                serde_json::from_slice(&frame).map_err(|e| ClientError::Protocol(e.to_string()))?;
            if let Some(params) = Self::as_event(&v) {
                self.events.push_back(params);
                continue;
            }
            return serde_json::from_value(v).map_err(|e| ClientError::Protocol(e.to_string()));
        }
    }

    fn as_event(v: &Value) -> Option<Value> {
        (v.get("id").is_none() && v.get("method").and_then(Value::as_str) == Some(EVENT_METHOD))
            .then(|| v.get("params").cloned().unwrap_or(Value::Null))
    }

    /// The next event pushed by the daemon after `events.subscribe` (control
    /// socket only). Waits for one if none is buffered.
    pub async fn next_event(&mut self) -> Result<Event, ClientError> {
        let v = match self.events.pop_front() {
            Some(v) => v,
            None => {
                let frame = self.framed.next().await.ok_or(ClientError::Closed)??;
                let v: Value = serde_json::from_slice(&frame)
                    .map_err(|e| ClientError::Protocol(e.to_string()))?;
                Self::as_event(&v).ok_or_else(|| {
                    ClientError::Protocol("a response arrived with no call waiting".into())
                })?
            }
        };
        serde_json::from_value(v).map_err(|e| ClientError::Protocol(e.to_string()))
    }
}
