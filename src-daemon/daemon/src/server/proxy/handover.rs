//! Receiving a box's proxy listener: the sender must be inside the box
//! (its pid namespace, as on the box's `agent.sock`), and what it sends
//! must be one listening TCP socket bound to loopback (in the box's own
//! network namespace: nothing outside the box can connect to it). The box
//! is then served as its agent, attested from the sender and greeted
//! once with the box's agent name. Blocking.

use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::sync::Arc;

use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
use valetkey_core::boxes::BoxSession;
use valetkey_core::broker::Shared;
use valetkey_core::caller::Caller;
use valetkey_ipc::methods::{AgentInfo, HelloParams};

/// The listener, and the box's caller.
pub type Received = (tokio::net::TcpListener, Arc<Caller>);

/// Receives and checks the listener `stream`'s peer hands over, and greets
/// the box's caller as session `n`.
pub fn receive(d: &Shared, s: &BoxSession, stream: UnixStream, n: u64) -> Result<Received, String> {
    let cred = rustix::net::sockopt::socket_peercred(&stream)
        .map_err(|e| format!("no peer credentials: {e}"))?;
    let me = rustix::process::geteuid();
    if cred.uid != me {
        return Err(format!("uid {} is not the daemon's", cred.uid.as_raw()));
    }
    let pid = cred.pid.as_raw_nonzero().get() as u32;
    s.admits(pid)?;
    let fd = one_fd(&stream)?;
    check(&fd)?;
    let std_listener = std::net::TcpListener::from(fd);
    std_listener
        .set_nonblocking(true)
        .map_err(|e| e.to_string())?;
    let listener = tokio::net::TcpListener::from_std(std_listener).map_err(|e| e.to_string())?;
    let caller = greet(d, s, pid, me.as_raw(), n)?;
    Ok((listener, caller))
}

/// The one descriptor of the one message on `stream`.
fn one_fd(stream: &UnixStream) -> Result<OwnedFd, String> {
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut byte = [0u8; 1];
    rustix::net::recvmsg(
        stream,
        &mut [std::io::IoSliceMut::new(&mut byte)],
        &mut control,
        RecvFlags::CMSG_CLOEXEC,
    )
    .map_err(|e| format!("cannot receive: {e}"))?;
    let mut fds: Vec<OwnedFd> = vec![];
    for m in control.drain() {
        if let RecvAncillaryMessage::ScmRights(got) = m {
            fds.extend(got);
        }
    }
    match (byte, fds.len()) {
        ([b'L'], 1) => Ok(fds.remove(0)),
        _ => Err("expected one listening socket".into()),
    }
}

/// A listening TCP socket on loopback.
fn check(fd: &OwnedFd) -> Result<(), String> {
    use rustix::net::{sockopt, AddressFamily, SocketType};
    let listening = sockopt::socket_acceptconn(fd).unwrap_or(false);
    let tcp = sockopt::socket_type(fd).is_ok_and(|t| t == SocketType::STREAM)
        && sockopt::socket_domain(fd)
            .is_ok_and(|f| f == AddressFamily::INET || f == AddressFamily::INET6);
    let local = rustix::net::getsockname(fd)
        .ok()
        .and_then(|a| std::net::SocketAddr::try_from(a).ok())
        .is_some_and(|a| a.ip().is_loopback());
    if listening && tcp && local {
        Ok(())
    } else {
        Err("what was handed over is not a listening TCP socket on loopback".into())
    }
}

/// Attests `pid` inside the box and says hello as the box's agent.
fn greet(
    d: &Shared,
    s: &BoxSession,
    pid: u32,
    uid: u32,
    session: u64,
) -> Result<Arc<Caller>, String> {
    s.admits(pid)?;
    let mut identity = d.attestor.attest(pid, uid).map_err(|e| e.to_string())?;
    identity.foreign_namespaces.clear();
    identity.confinement = Some(s.facts.clone());
    let mut caller = Caller::new(session, identity);
    let hello = HelloParams {
        protocol: valetkey_ipc::PROTOCOL_VERSION,
        agent: AgentInfo {
            name: s.agent.clone(),
            version: String::new(),
            purpose: "requests through the box's egress proxy".into(),
        },
        delegation: None,
    };
    valetkey_core::access::hello::handle(d, &mut caller, hello).map_err(|e| e.to_string())?;
    Ok(Arc::new(caller))
}
