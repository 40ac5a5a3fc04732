//! What both frame loops share: the connection type, writing one
//! response, the per-connection session, and turning JSON params into
//! typed ones and typed results back into JSON.
//!
//! On the agent socket a success is encoded once, straight from the
//! handler's typed result into the frame (no `serde_json::Value` tree),
//! in a buffer that is zeroed when dropped and written to the socket
//! directly: the token in it is copied nowhere else.

use bytes::Bytes;
use futures::SinkExt;
use interprocess::local_socket::tokio::Stream;
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio_util::codec::Framed;
use valetkey_core::caller::Caller;
use valetkey_core::error::BrokerError;
use valetkey_ipc::codec::FrameCodec;
use valetkey_ipc::jsonrpc::{Id, Response};
use valetkey_ipc::methods::Method;
use valetkey_ipc::{ErrorCode, RpcError};
use zeroize::Zeroizing;

/// Per-connection session state.
pub struct Session {
    /// Connection number, for logs.
    pub conn_id: u64,
    /// Who is on the other end: attested, and after `hello` greeted.
    pub caller: Caller,
}

pub(crate) type Conn = Framed<Stream, FrameCodec>;

/// Bytes a connection's read buffer starts with: a `token.get` frame is
/// ~100 bytes. It grows for a bigger frame (up to the 64 KiB cap), and the
/// write buffer only when an error is written: an idle connection holds
/// almost nothing, where the codec's default is 8 KiB each way.
const READ_BUF: usize = 256;

/// Frames a new connection.
pub(crate) fn framed(stream: Stream) -> Conn {
    let mut parts = tokio_util::codec::FramedParts::new::<Bytes>(stream, FrameCodec::default());
    parts.read_buf = bytes::BytesMut::with_capacity(READ_BUF);
    parts.write_buf = bytes::BytesMut::new();
    Framed::from_parts(parts)
}

pub(crate) async fn send(framed: &mut Conn, resp: &Response) -> bool {
    match serde_json::to_vec(resp) {
        Ok(v) => framed.send(Bytes::from(v)).await.is_ok(),
        Err(_) => false,
    }
}

/// An answer to one agent request, ready for the wire.
pub enum Answer {
    /// A success, encoded (newline included) into a buffer zeroed on drop.
    Encoded(Zeroizing<Vec<u8>>),
    /// An error.
    Error(Response),
}

impl Answer {
    /// The error, if it is one.
    pub fn error(&self) -> Option<&RpcError> {
        match self {
            Answer::Encoded(_) => None,
            Answer::Error(r) => r.error.as_ref(),
        }
    }

    /// An error answer to request `id`.
    pub fn err(id: Option<Id>, e: impl Into<RpcError>) -> Answer {
        Answer::Error(Response::err(id, e.into()))
    }
}

/// Encodes a handler's outcome for request `id`.
pub(crate) fn encode<T: serde::Serialize>(id: &Option<Id>, r: Result<T, BrokerError>) -> Answer {
    let v = match r {
        Ok(v) => v,
        Err(e) => return Answer::err(id.clone(), e),
    };
    let mut out = Zeroizing::new(Vec::with_capacity(384));
    out.extend_from_slice(br#"{"jsonrpc":"2.0","id":"#);
    let written = serde_json::to_writer(&mut *out, id).and_then(|()| {
        out.extend_from_slice(br#","result":"#);
        serde_json::to_writer(&mut *out, &v)
    });
    match written {
        Ok(()) => {
            out.extend_from_slice(b"}\n");
            Answer::Encoded(out)
        }
        Err(e) => Answer::err(
            id.clone(),
            RpcError::new(ErrorCode::Internal, format!("cannot encode result: {e}")),
        ),
    }
}

/// Sends an answer; false when the connection is gone.
pub(crate) async fn send_answer(framed: &mut Conn, a: &Answer) -> bool {
    match a {
        // Straight to the socket: nothing of it stays in a codec buffer.
        Answer::Encoded(bytes) => framed.get_mut().write_all(bytes).await.is_ok(),
        Answer::Error(r) => send(framed, r).await,
    }
}

/// An agent request's params, parsed straight from the frame.
pub(crate) fn params_ref<M: Method>(
    raw: Option<&serde_json::value::RawValue>,
) -> Result<M::Params, BrokerError> {
    serde_json::from_str(raw.map_or("{}", |r| r.get())).map_err(|e| {
        BrokerError::rpc(
            ErrorCode::InvalidParams,
            format!("invalid params for {}: {e}; see PROTOCOL.md", M::NAME),
        )
    })
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
