//! The four things measured, each as "open a connection" and "one request
//! on it", with the same client code path for all of them:
//! * `valetkey`: `hello` once, then a cached `token.get` per request;
//! * `ssh-agent`: `SSH2_AGENTC_REQUEST_IDENTITIES` (message 11), whose
//!   reply (message 12) the bench pads to our reply's size with a long key
//!   comment;
//! * `echo`: [`crate::echo`], the least a JSON-over-Unix-socket server can do;
//! * `keychain`: `SearchItems` + `GetSecrets` on the Secret Service over one
//!   kept D-Bus connection (what `secret-tool lookup` does), the read a
//!   broker without a cache would make per request.

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::{bail, Context};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;
use zbus::zvariant::{OwnedObjectPath, OwnedValue, Value};

/// What to measure.
#[derive(Debug, Clone)]
pub enum Target {
    /// Valet Key's agent socket; provider and scope to ask for.
    Valetkey {
        /// Agent socket.
        socket: PathBuf,
        /// Provider.
        provider: String,
        /// Scope.
        scope: String,
    },
    /// An ssh-agent socket.
    SshAgent(PathBuf),
    /// The echo server's socket.
    Echo(PathBuf),
    /// The Secret Service item with these attributes.
    Keychain {
        /// `service` attribute.
        service: String,
        /// `username` attribute.
        username: String,
    },
}

impl Target {
    /// Short name for tables.
    pub fn name(&self) -> &'static str {
        match self {
            Target::Valetkey { .. } => "valetkey",
            Target::SshAgent(_) => "ssh-agent",
            Target::Echo(_) => "echo",
            Target::Keychain { .. } => "keychain",
        }
    }

    /// Opens one connection, ready for [`Conn::call`].
    pub async fn connect(&self) -> anyhow::Result<Conn> {
        Ok(match self {
            Target::Valetkey {
                socket,
                provider,
                scope,
            } => Conn::Line(Line::valetkey(socket, "bench", provider, scope).await?),
            Target::Echo(socket) => {
                let mut line = Line::connect(socket).await?;
                let get = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "token.get",
                    "params": {"provider": "local", "scopes": ["repo:read"]}});
                line.request = format!("{get}\n").into_bytes();
                Conn::Line(line)
            }
            Target::SshAgent(socket) => {
                let s = connect_unix(socket).await?;
                Conn::Ssh(s, Vec::with_capacity(2048))
            }
            Target::Keychain { service, username } => {
                Conn::Keychain(Box::new(Keychain::open(service, username).await?))
            }
        })
    }
}

/// A newline-delimited JSON connection with a fixed request.
pub struct Line {
    read: BufReader<OwnedReadHalf>,
    write: OwnedWriteHalf,
    request: Vec<u8>,
    reply: Vec<u8>,
}

/// Connects, waiting while the server's listen backlog is full (a Unix
/// socket refuses with EAGAIN then, rather than queueing the connect).
async fn connect_unix(socket: &std::path::Path) -> anyhow::Result<UnixStream> {
    let mut tries = 0;
    loop {
        match UnixStream::connect(socket).await {
            Ok(s) => return Ok(s),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && tries < 2000 => {
                tries += 1;
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
            Err(e) => return Err(e).with_context(|| format!("connect {}", socket.display())),
        }
    }
}

impl Line {
    async fn connect(socket: &std::path::Path) -> anyhow::Result<Line> {
        let s = connect_unix(socket).await?;
        let (r, w) = s.into_split();
        Ok(Line {
            read: BufReader::with_capacity(8192, r),
            write: w,
            request: Vec::new(),
            reply: Vec::with_capacity(4096),
        })
    }

    /// Says `hello` as `agent`, then makes `token.get` the request.
    async fn valetkey(
        socket: &std::path::Path,
        agent: &str,
        provider: &str,
        scope: &str,
    ) -> anyhow::Result<Line> {
        let mut line = Line::connect(socket).await?;
        let hello = serde_json::json!({"jsonrpc": "2.0", "id": 0, "method": "hello",
            "params": {"protocol": 1, "agent": {"name": agent, "purpose": "benchmark"}}});
        line.request = format!("{hello}\n").into_bytes();
        line.call().await.context("hello")?;
        let get = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "token.get",
            "params": {"provider": provider, "scopes": [scope]}});
        line.request = format!("{get}\n").into_bytes();
        Ok(line)
    }

    async fn call(&mut self) -> anyhow::Result<usize> {
        self.write.write_all(&self.request).await?;
        self.reply.clear();
        let n = self.read.read_until(b'\n', &mut self.reply).await?;
        if n == 0 {
            bail!("connection closed");
        }
        // An error reply has "error" where a result has "result"; a
        // substring check keeps JSON parsing out of the client's cost.
        if !self.reply.windows(9).any(|w| w == b"\"result\":") {
            bail!(
                "error reply: {}",
                String::from_utf8_lossy(&self.reply).trim()
            );
        }
        Ok(n)
    }
}

/// A kept Secret Service connection and session.
pub struct Keychain {
    service: zbus::Proxy<'static>,
    session: OwnedObjectPath,
    attrs: HashMap<String, String>,
}

impl Keychain {
    async fn open(service: &str, username: &str) -> anyhow::Result<Keychain> {
        let conn = zbus::Connection::session().await.context("session bus")?;
        let proxy = zbus::Proxy::new(
            &conn,
            "org.freedesktop.secrets",
            "/org/freedesktop/secrets",
            "org.freedesktop.Secret.Service",
        )
        .await?;
        let (_, session): (OwnedValue, OwnedObjectPath) = proxy
            .call("OpenSession", &("plain", Value::from("")))
            .await
            .context("OpenSession")?;
        Ok(Keychain {
            service: proxy,
            session,
            attrs: HashMap::from([
                ("service".into(), service.into()),
                ("username".into(), username.into()),
            ]),
        })
    }

    async fn lookup(&self) -> anyhow::Result<usize> {
        let (unlocked, _locked): (Vec<OwnedObjectPath>, Vec<OwnedObjectPath>) =
            self.service.call("SearchItems", &(&self.attrs,)).await?;
        let Some(item) = unlocked.into_iter().next() else {
            bail!("no unlocked item with {:?}", self.attrs);
        };
        type Secret = (OwnedObjectPath, Vec<u8>, Vec<u8>, String);
        let secrets: HashMap<OwnedObjectPath, Secret> = self
            .service
            .call("GetSecrets", &(vec![item], &self.session))
            .await?;
        match secrets.into_values().next() {
            Some((_, _, value, _)) => Ok(value.len()),
            None => bail!("GetSecrets returned nothing"),
        }
    }
}

/// One open connection.
pub enum Conn {
    /// valetkey or echo.
    Line(Line),
    /// ssh-agent, with a reply buffer.
    Ssh(UnixStream, Vec<u8>),
    /// Secret Service.
    Keychain(Box<Keychain>),
}

impl Conn {
    /// One request and its whole reply. Returns the reply's size in bytes.
    pub async fn call(&mut self) -> anyhow::Result<usize> {
        match self {
            Conn::Line(l) => l.call().await,
            Conn::Ssh(s, buf) => {
                s.write_all(&[0, 0, 0, 1, 11]).await?;
                let mut len = [0u8; 4];
                s.read_exact(&mut len).await?;
                let len = u32::from_be_bytes(len) as usize;
                if len > 256 * 1024 {
                    bail!("ssh-agent reply of {len} bytes");
                }
                buf.resize(len, 0);
                s.read_exact(buf).await?;
                if buf.first() != Some(&12) {
                    bail!("ssh-agent answered message {:?}, not 12", buf.first());
                }
                Ok(len + 4)
            }
            Conn::Keychain(k) => k.lookup().await,
        }
    }

    /// The pid of the server process (`SO_PEERCRED`), for its RSS.
    pub fn server_pid(&self) -> Option<u32> {
        let fd = match self {
            Conn::Line(l) => rustix::net::sockopt::socket_peercred(l.write.as_ref()).ok()?,
            Conn::Ssh(s, _) => rustix::net::sockopt::socket_peercred(s).ok()?,
            Conn::Keychain(_) => return None,
        };
        Some(fd.pid.as_raw_nonzero().get() as u32)
    }
}

/// A cold `token.get`: a new connection says hello as `agent` (which has a
/// grant but no cached token yet) and asks once. Returns the round trip of
/// the `token.get` alone.
pub async fn cold_token_get(
    socket: &std::path::Path,
    agent: &str,
    provider: &str,
    scope: &str,
) -> anyhow::Result<std::time::Duration> {
    let mut line = Line::valetkey(socket, agent, provider, scope).await?;
    let t = std::time::Instant::now();
    line.call().await.context("cold token.get")?;
    Ok(t.elapsed())
}
