//! An unboxed agent's own proxy (`proxy.open`): a loopback listener in
//! the daemon for as long as the agent's connection stays open. The
//! agent's processes have the user's network and keychain anyway, so
//! what it adds is that tokens for the providers' hosts are written in by
//! the proxy (placeholders, rules, audit) instead of held by the agent.
//! Each `CONNECT` must carry the proxy's own credentials (in `proxy_url`)
//! and come from the agent or a process it started (the TCP peer's socket
//! is found among their descriptors).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::watch;
use valetkey_core::broker::Shared;
use valetkey_core::caller::Caller;
use valetkey_core::error::BrokerError;
use valetkey_ipc::methods::ProxyOpenResult;
use valetkey_ipc::ErrorCode;

use super::{connection, Ctx, Proxy, Who, FIRST_SESSION};

/// Open while the agent's connection is: dropping it ends the proxy.
pub struct Opened {
    /// What `proxy.open` answered (answered again on a repeat).
    pub result: ProxyOpenResult,
    _stop: watch::Sender<bool>,
}

/// Handles `proxy.open` for the greeted `caller`.
pub async fn open(
    d: &Shared,
    proxy: &Arc<Proxy>,
    caller: &mut Caller,
) -> Result<Opened, BrokerError> {
    let invalid = |m: &str| BrokerError::rpc(ErrorCode::InvalidParams, m);
    let Some((agent_id, agent)) = caller.agent.clone() else {
        return Err(BrokerError::rpc(
            ErrorCode::HelloRequired,
            "call hello before \"proxy.open\"",
        ));
    };
    if caller.identity.confinement.is_some() {
        return Err(invalid(
            "in a box, start it with valetkey run --net proxy instead",
        ));
    }
    let internal = |e: String| BrokerError::rpc(ErrorCode::Internal, e);
    let n = FIRST_SESSION + proxy.next_session.fetch_add(1, Ordering::Relaxed);
    let key = format!("a_{n:x}");
    let bx = Arc::new(
        valetkey_core::proxy::BoxProxy::new(&key, &d.providers(), vec![], d.clock.now())
            .map_err(internal)?,
    );
    let dir = valetkey_ipc::paths::runtime_dir()
        .join("proxies")
        .join(&key);
    valetkey_core::dirs::ensure_private_dir(&dir).map_err(|e| internal(e.to_string()))?;
    let bundle = dir.join("ca-bundle.pem");
    std::fs::write(&bundle, valetkey_core::boxes::bundle(bx.ca.pem()))
        .map_err(|e| internal(e.to_string()))?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .map_err(|e| internal(e.to_string()))?;
    let port = listener
        .local_addr()
        .map_err(|e| internal(e.to_string()))?
        .port();
    let secret = valetkey_core::proxy::placeholder::new();
    use base64::Engine;
    let authorization = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("valetkey:{secret}"))
    );
    let mut own = Caller::new(n, caller.identity.clone());
    own.greet(agent_id, agent, None);
    own.egress = Some(bx.clone());
    caller.egress = Some(bx.clone());
    let (stop, stopped) = watch::channel(false);
    let ctx = Ctx {
        d: d.clone(),
        proxy: proxy.clone(),
        bx: bx.clone(),
        key: Arc::from(key.as_str()),
        caller: Arc::new(own),
        who: Arc::new(Who::Agent {
            authorization,
            pid: caller.identity.pid,
        }),
    };
    proxy.rt.spawn(serve(ctx, listener, stopped, dir));
    let hosts = valetkey_core::proxy::provider_hosts(&d.providers());
    Ok(Opened {
        result: ProxyOpenResult {
            proxy_url: format!("http://valetkey:{secret}@127.0.0.1:{port}"),
            ca_bundle: bundle.display().to_string(),
            hosts,
        },
        _stop: stop,
    })
}

/// Serves the agent's proxy until its connection closes.
async fn serve(
    ctx: Ctx,
    listener: tokio::net::TcpListener,
    mut stopped: watch::Receiver<bool>,
    dir: std::path::PathBuf,
) {
    let pid = match &*ctx.who {
        Who::Agent { pid, .. } => *pid,
        Who::Boxed => return,
    };
    loop {
        tokio::select! {
            s = listener.accept() => match s {
                Ok((tcp, peer)) => {
                    let local = listener.local_addr().map(|a| a.port()).unwrap_or(0);
                    let ok = tokio::task::spawn_blocking(move || owned_by_tree(pid, peer.port(), local)).await.unwrap_or(false);
                    if !ok {
                        tracing::warn!(port = peer.port(), "agent proxy: a connection from outside the agent's processes refused");
                        continue;
                    }
                    let _ = tcp.set_nodelay(true);
                    tokio::spawn(connection(ctx.clone(), tcp));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "agent proxy accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
            _ = stopped.changed() => break,
        }
    }
    if let Some(g) = ctx.caller.greeted() {
        valetkey_core::access::proxied::flush(&ctx.d, &ctx.bx, g);
    }
    ctx.proxy.upstreams.forget(&ctx.key);
    let _ = std::fs::remove_dir_all(dir);
}

/// Whether the TCP socket of the peer at 127.0.0.1:`peer` (connected to
/// our `local` port) is held by process `root` or one of its descendants.
fn owned_by_tree(root: u32, peer: u16, local: u16) -> bool {
    let Some(inode) = tcp_inode(peer, local) else {
        return false;
    };
    let target = format!("socket:[{inode}]");
    descendants(root).into_iter().any(|pid| {
        std::fs::read_dir(format!("/proc/{pid}/fd")).is_ok_and(|fds| {
            fds.flatten().any(|f| {
                std::fs::read_link(f.path()).is_ok_and(|l| l.as_os_str() == target.as_str())
            })
        })
    })
}

/// The inode of the socket at local port `peer` connected to port `to`,
/// from `/proc/net/tcp`.
fn tcp_inode(peer: u16, to: u16) -> Option<u64> {
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    let want = (format!("0100007F:{peer:04X}"), format!("0100007F:{to:04X}"));
    table.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.len() > 9 && f[1] == want.0 && f[2] == want.1)
            .then(|| f[9].parse().ok())
            .flatten()
    })
}

/// `root` and every process below it.
fn descendants(root: u32) -> Vec<u32> {
    let mut parent = std::collections::HashMap::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            if let Some((pp, _)) = valetkey_core::attest::parent_and_start(pid) {
                parent.insert(pid, pp);
            }
        }
    }
    let mut out = vec![root];
    let mut i = 0;
    while i < out.len() {
        let p = out[i];
        out.extend(parent.iter().filter(|(_, pp)| **pp == p).map(|(c, _)| *c));
        i += 1;
    }
    out
}
