//! A raw line client, so tests can send exactly the bytes they mean
//! (hostile frames, a byte at a time) and see exactly what comes back.

use std::path::Path;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

/// `hello` as agent `raw`, one frame.
pub const HELLO: &[u8] =
    b"{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"hello\",\"params\":{\"protocol\":1,\"agent\":{\"name\":\"raw\"}}}\n";

/// One connection, split for reading lines and writing bytes.
pub struct Raw {
    r: BufReader<tokio::net::unix::OwnedReadHalf>,
    w: tokio::net::unix::OwnedWriteHalf,
}

impl Raw {
    /// Connects to the socket at `path`.
    pub async fn connect(path: &Path) -> Raw {
        let (r, w) = UnixStream::connect(path)
            .await
            .expect("connect")
            .into_split();
        Raw {
            r: BufReader::new(r),
            w,
        }
    }

    /// Writes `bytes`; false once the daemon has hung up.
    pub async fn send(&mut self, bytes: &[u8]) -> bool {
        self.w.write_all(bytes).await.is_ok()
    }

    /// The next response, or None at EOF.
    pub async fn recv(&mut self) -> Option<serde_json::Value> {
        let mut line = String::new();
        let n = self.r.read_line(&mut line).await.ok()?;
        (n > 0).then(|| serde_json::from_str(&line).expect("daemon sends JSON"))
    }
}

/// The stable error name of a response, or "".
pub fn name(v: &serde_json::Value) -> &str {
    v["error"]["data"]["name"].as_str().unwrap_or("")
}
