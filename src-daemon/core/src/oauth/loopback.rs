//! The loopback listener of browser flows on 127.0.0.1 (RFC 8252 §7.3):
//! the requests' targets, and a one-shot answer to each. Only the request
//! head is read; nothing a client sends but the target matters.
//!
//! Anything on the machine can connect to 127.0.0.1, a box with the
//! shared network included, so the listener is built to be knocked on:
//! each connection is read in a task of its own (a client that sends
//! nothing holds up nobody, and is dropped after [`READ_TIMEOUT`]), at
//! most [`MAX_READERS`] at a time, and the flows above decide each
//! request on its `state` and answer a wrong one with `400` while they go
//! on waiting for the right one. Nobody can end a login in progress from
//! outside it.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};

/// How long one client has to send its request head.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections read at once; more wait in the kernel's accept queue.
pub const MAX_READERS: usize = 32;

/// The largest request head read.
const MAX_HEAD: usize = 8192;

/// The requests arriving on one loopback listener, each with its
/// connection for the answer. Dropping it stops the listener.
pub struct Requests {
    rx: mpsc::Receiver<(TcpStream, url::Url)>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Requests {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Requests {
    /// Starts accepting on `listener`.
    pub fn serve(listener: TcpListener) -> Requests {
        let (tx, rx) = mpsc::channel(MAX_READERS);
        let task = tokio::spawn(accept_loop(listener, tx));
        Requests { rx, task }
    }

    /// The next request with a target that parses.
    pub async fn next(&mut self) -> std::io::Result<(TcpStream, url::Url)> {
        self.rx.recv().await.ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "the loopback listener stopped",
            )
        })
    }
}

async fn accept_loop(listener: TcpListener, tx: mpsc::Sender<(TcpStream, url::Url)>) {
    let readers = Arc::new(Semaphore::new(MAX_READERS));
    loop {
        let Ok(permit) = readers.clone().acquire_owned().await else {
            return;
        };
        let sock = match listener.accept().await {
            Ok((sock, _)) => sock,
            Err(e) => {
                tracing::warn!(error = %e, "loopback accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let tx = tx.clone();
        tokio::spawn(async move {
            if let Some(req) = read_target(sock).await {
                let _ = tx.send(req).await;
            }
            drop(permit);
        });
    }
}

/// Reads one request head (within [`READ_TIMEOUT`]) and its target.
async fn read_target(mut sock: TcpStream) -> Option<(TcpStream, url::Url)> {
    let mut buf = vec![0u8; MAX_HEAD];
    let mut len = 0;
    let read = tokio::time::timeout(READ_TIMEOUT, async {
        while len < buf.len() {
            let n = sock.read(&mut buf[len..]).await?;
            if n == 0 {
                break;
            }
            len += n;
            if buf[..len].windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
        Ok::<_, std::io::Error>(())
    })
    .await;
    if !matches!(read, Ok(Ok(()))) {
        return None;
    }
    let head = String::from_utf8_lossy(&buf[..len]).into_owned();
    let target = head.split_whitespace().nth(1).unwrap_or("");
    let url = url::Url::parse(&format!("http://127.0.0.1{target}")).ok()?;
    Some((sock, url))
}

/// The query parameter `k` of `url`.
pub fn param(url: &url::Url, k: &str) -> Option<String> {
    url.query_pairs()
        .find(|(n, _)| n == k)
        .map(|(_, v)| v.into_owned())
}

/// Whether `url` carries `state` exactly once, and that one is `expected`
/// (a second `state` would let a forged one ride along with the real).
pub fn state_is(url: &url::Url, expected: &str) -> bool {
    let mut states = url.query_pairs().filter(|(n, _)| n == "state");
    matches!((states.next(), states.next()), (Some((_, v)), None) if v == expected)
}

/// The answer to a redirect that is not for the flow in progress: `400`,
/// and the flow goes on waiting.
pub async fn not_ours(sock: TcpStream) {
    reply(
        sock,
        "400 Bad Request",
        "text/plain",
        "Valet Key: this redirect is not for the login in progress (its state does not match); it was ignored.",
    )
    .await;
}

/// Answers with `status` and a body of `content_type`, then closes.
pub async fn reply(mut sock: TcpStream, status: &str, content_type: &str, body: &str) {
    let resp = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}; charset=utf-8\r\ncontent-length: {}\r\ncache-control: no-store\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = sock.write_all(resp.as_bytes()).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> url::Url {
        url::Url::parse(s).expect("url")
    }

    #[test]
    fn the_state_must_be_there_once_and_match() {
        assert!(state_is(&u("http://h/cb?code=c&state=abc"), "abc"));
        assert!(!state_is(&u("http://h/cb?code=c&state=abd"), "abc"));
        assert!(!state_is(&u("http://h/cb?code=c"), "abc"));
        assert!(!state_is(&u("http://h/cb?state=abc&state=x"), "abc"));
        assert!(!state_is(&u("http://h/cb?state=x&state=abc"), "abc"));
    }

    #[tokio::test]
    async fn a_client_that_sends_nothing_holds_up_nobody() {
        let l = TcpListener::bind(("127.0.0.1", 0)).await.expect("bind");
        let addr = l.local_addr().expect("addr");
        let mut reqs = Requests::serve(l);
        // Silent connections, more than one reader's worth.
        let mut silent = vec![];
        for _ in 0..4 {
            silent.push(TcpStream::connect(addr).await.expect("connect"));
        }
        let mut c = TcpStream::connect(addr).await.expect("connect");
        c.write_all(b"GET /callback?state=s HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("write");
        let (sock, url) = tokio::time::timeout(Duration::from_secs(2), reqs.next())
            .await
            .expect("not held up by the silent ones")
            .expect("a request");
        assert_eq!(url.path(), "/callback");
        not_ours(sock).await;
        let mut answer = String::new();
        c.read_to_string(&mut answer).await.expect("read");
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
        drop(silent);
    }
}
