//! The closed-loop load generator: N connections, each sending its next
//! request as soon as the last reply is in, on one current_thread runtime
//! (the same client for every target, so ratios compare servers).

use std::time::{Duration, Instant};

use crate::stats::Samples;
use crate::targets::Target;

/// How long, or how much, to run.
#[derive(Debug, Clone, Copy)]
pub enum Budget {
    /// Until this much time has passed.
    Time(Duration),
    /// This many requests per connection.
    Requests(usize),
}

/// One measurement: what it saw, and the server's RSS (KiB) with all
/// `conns` connections open, when the server's pid is known.
pub struct Run {
    /// Latencies and throughput.
    pub samples: Samples,
    /// Server RSS with every connection open.
    pub rss_kib: Option<u64>,
}

/// Reads `VmRSS` of `pid`, in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Nanoseconds all of `pid`'s threads have spent on a CPU: the first field
/// of each `/proc/PID/task/TID/schedstat`.
pub fn cpu_ns(pid: u32) -> Option<u64> {
    let mut total = 0;
    for t in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let p = t.ok()?.path().join("schedstat");
        let text = std::fs::read_to_string(p).ok()?;
        total += text.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(total)
}

/// Opens `conns` connections, warms each with one request, then measures.
pub async fn run(target: &Target, conns: usize, budget: Budget) -> anyhow::Result<Run> {
    let mut open = Vec::with_capacity(conns);
    for _ in 0..conns {
        open.push(target.connect().await?);
    }
    for c in open.iter_mut() {
        c.call().await?;
    }
    let pid = open.first().and_then(|c| c.server_pid());
    let rss_kib = pid.and_then(rss_kib);
    let cpu_before = pid.and_then(cpu_ns);
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for mut c in open {
        tasks.spawn(async move {
            let mut s = Samples::default();
            let mut n = 0usize;
            loop {
                match budget {
                    Budget::Time(d) if start.elapsed() >= d => break,
                    Budget::Requests(max) if n >= max => break,
                    _ => {}
                }
                let t = Instant::now();
                match c.call().await {
                    Ok(_) => s.ns.push(t.elapsed().as_nanos() as u64),
                    Err(_) => {
                        s.errors += 1;
                        break;
                    }
                }
                n += 1;
            }
            s
        });
    }
    let mut all = Samples::default();
    while let Some(s) = tasks.join_next().await {
        all.merge(s?);
    }
    all.secs = start.elapsed().as_secs_f64();
    all.server_cpu_ns = match (cpu_before, pid.and_then(cpu_ns)) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a)),
        _ => None,
    };
    Ok(Run {
        samples: all,
        rss_kib,
    })
}
