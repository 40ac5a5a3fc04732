//! What both frame loops share: the connection type, writing one
//! response, the per-connection session, and turning JSON params into
//! typed ones and typed results back into JSON.

use bytes::Bytes;
use futures::SinkExt;
use interprocess::local_socket::tokio::Stream;
use serde_json::Value;
use tokio_util::codec::Framed;
use valetkey_core::caller::Caller;
use valetkey_core::error::BrokerError;
use valetkey_ipc::codec::FrameCodec;
use valetkey_ipc::jsonrpc::Response;
use valetkey_ipc::methods::Method;
use valetkey_ipc::ErrorCode;

/// Per-connection session state.
pub struct Session {
    /// Connection number, for logs.
    pub conn_id: u64,
    /// Who is on the other end: attested, and after `hello` greeted.
    pub caller: Caller,
}

pub(crate) type Conn = Framed<Stream, FrameCodec>;

pub(crate) async fn send(framed: &mut Conn, resp: &Response) -> bool {
    match serde_json::to_vec(resp) {
        Ok(v) => framed.send(Bytes::from(v)).await.is_ok(),
        Err(_) => false,
    }
}

pub(crate) fn params<M: Method>(raw: Option<Value>) -> Result<M::Params, BrokerError> {
    let raw = raw.unwrap_or_else(|| Value::Object(Default::default()));
    serde_json::from_value(raw).map_err(|e| {
        BrokerError::rpc(
            ErrorCode::InvalidParams,
            format!("invalid params for {}: {e}; see PROTOCOL.md", M::NAME),
        )
    })
}

pub(crate) fn result<T: serde::Serialize>(r: Result<T, BrokerError>) -> Result<Value, BrokerError> {
    r.and_then(|v| {
        serde_json::to_value(v).map_err(|e| {
            BrokerError::rpc(ErrorCode::Internal, format!("cannot encode result: {e}"))
        })
    })
}
