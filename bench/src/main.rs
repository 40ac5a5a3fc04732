//! `valetkey-bench`: measures Valet Key's cached `token.get` over the real
//! socket against the baselines a user would compare it with, on the same
//! machine, with the same client, interleaved (A B C A B C …) so drift in a
//! noisy VM hits every target alike. See docs/BENCHMARKS.md.

mod echo;
mod https;
mod load;
mod procs;
mod stats;
mod svg;
mod targets;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use serde_json::json;

use load::Budget;
use stats::{Samples, Summary};
use targets::Target;

/// Valet Key's benchmark: latency and throughput against ssh-agent, a
/// minimal echo server and a Secret Service read.
#[derive(Debug, Parser)]
#[command(name = "valetkey-bench", version)]
struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Serve the baseline JSON echo server.
    EchoServer {
        /// Where to listen.
        #[arg(long)]
        socket: PathBuf,
        /// Reply size in bytes, newline included (match valetkey's).
        #[arg(long, default_value_t = 1024)]
        reply_bytes: usize,
    },
    /// Print the size of a cached token.get reply (to pad the baselines to).
    ReplySize {
        #[command(flatten)]
        vk: VkArgs,
    },
    /// The full comparison.
    Compare(Box<CompareArgs>),
    /// Serve HTTPS GETs of a fixed body (the egress proxy benchmark's upstream).
    HttpsServer {
        /// Certificate chain (PEM).
        #[arg(long)]
        cert: String,
        /// Its key (PEM).
        #[arg(long)]
        key: String,
        /// Port on 127.0.0.1.
        #[arg(long)]
        port: u16,
        /// Body size.
        #[arg(long, default_value_t = 1024)]
        size: usize,
    },
    /// Kept-alive HTTPS GETs, directly or through a proxy; prints one JSON summary.
    HttpsLoad {
        /// The URL.
        #[arg(long)]
        url: String,
        /// An HTTP proxy (`http://127.0.0.1:3128`) to CONNECT through.
        #[arg(long)]
        proxy: Option<String>,
        /// CA bundle to trust.
        #[arg(long)]
        ca: String,
        /// Send `Authorization: Bearer $VAR` (a placeholder in a proxy box).
        #[arg(long)]
        bearer_env: Option<String>,
        /// Concurrent connections.
        #[arg(long, default_value_t = 1)]
        concurrency: usize,
        /// Measuring time.
        #[arg(long, value_parser = humantime::parse_duration, default_value = "2s")]
        duration: Duration,
    },
    /// Cached token.get round trips through the Rust client library
    /// (`valetkey_ipc::Client`), one connection, sequential; prints one JSON
    /// summary (the SDK latency comparison, bench/run.sh --sdks).
    ClientLatency {
        /// Valet Key's agent socket.
        #[arg(long)]
        agent_socket: PathBuf,
        /// The agent name to say hello as.
        #[arg(long, default_value = "bench")]
        agent: String,
        /// Provider to ask.
        #[arg(long, default_value = "local")]
        provider: String,
        /// Scope to ask for.
        #[arg(long, default_value = "repo:read")]
        scope: String,
        /// Measured calls (after 100 to warm up).
        #[arg(long, default_value_t = 2000)]
        requests: usize,
    },
    /// One target, one connection count, a fixed number of requests (for
    /// callgrind runs, where only the server's instruction count matters).
    Load {
        #[command(flatten)]
        vk: VkArgs,
        /// valetkey, ssh-agent or echo; for the baselines --agent-socket is their socket.
        #[arg(long, default_value = "valetkey")]
        target: String,
        /// Concurrent connections.
        #[arg(long, default_value_t = 1)]
        connections: usize,
        /// Requests per connection.
        #[arg(long, default_value_t = 1000)]
        requests: usize,
    },
}

#[derive(Debug, clap::Args)]
struct VkArgs {
    /// Valet Key's agent socket.
    #[arg(long)]
    agent_socket: PathBuf,
    /// Provider to ask.
    #[arg(long, default_value = "local")]
    provider: String,
    /// Scope to ask for (the `bench` agent must hold a grant for it).
    #[arg(long, default_value = "repo:read")]
    scope: String,
}

#[derive(Debug, clap::Args)]
struct CompareArgs {
    #[command(flatten)]
    vk: VkArgs,
    /// ssh-agent's socket (SSH_AUTH_SOCK), with one key loaded.
    #[arg(long)]
    ssh_socket: PathBuf,
    /// The echo server's socket.
    #[arg(long)]
    echo_socket: PathBuf,
    /// Secret Service item to read, as service/username.
    #[arg(long)]
    keychain: Option<String>,
    /// Concurrent connections to measure at.
    #[arg(long, value_delimiter = ',', default_value = "1,16,256,1000")]
    concurrency: Vec<usize>,
    /// Measuring time per target and concurrency, split over the rounds.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "8s")]
    duration: Duration,
    /// Instead of a duration: requests per connection per round (smoke runs).
    #[arg(long)]
    requests: Option<usize>,
    /// Interleaved rounds.
    #[arg(long, default_value_t = 4)]
    rounds: usize,
    /// valetkeyd and valetkey binaries, for exec-to-ready and one-shot figures.
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Runs of each process-level measurement.
    #[arg(long, default_value_t = 20)]
    process_runs: usize,
    /// Agents `bench-cold-0`… with grants and nothing cached, for the cold path.
    #[arg(long, default_value_t = 0)]
    cold_agents: usize,
    /// The test provider's control address (host:port) for its own timings.
    #[arg(long)]
    provider_control: Option<String>,
    /// Write every figure as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write the latency plot here.
    #[arg(long)]
    svg: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    raise_nofile();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    match args.cmd {
        Cmd::EchoServer {
            socket,
            reply_bytes,
        } => rt.block_on(echo::serve(&socket, reply_bytes)),
        Cmd::ReplySize { vk } => rt.block_on(async {
            let mut c = vk_target(&vk).connect().await?;
            println!("{}", c.call().await?);
            Ok(())
        }),
        Cmd::Compare(a) => rt.block_on(compare(*a)),
        Cmd::ClientLatency {
            agent_socket,
            agent,
            provider,
            scope,
            requests,
        } => rt.block_on(async {
            let s = client_latency(&agent_socket, &agent, &provider, &scope, requests).await?;
            println!("{}", serde_json::to_string(&s)?);
            Ok(())
        }),
        Cmd::HttpsServer {
            cert,
            key,
            port,
            size,
        } => rt.block_on(https::serve(&cert, &key, port, size)),
        Cmd::HttpsLoad {
            url,
            proxy,
            ca,
            bearer_env,
            concurrency,
            duration,
        } => rt.block_on(async {
            let authorization = match bearer_env {
                Some(v) => Some(format!("Bearer {}", std::env::var(&v)?)),
                None => None,
            };
            let l = https::Load {
                url,
                proxy,
                ca,
                authorization,
                concurrency,
                duration,
            };
            let mut samples = https::load(&l).await?;
            println!("{}", serde_json::to_string(&samples.summary())?);
            Ok(())
        }),
        Cmd::Load {
            vk,
            target,
            connections,
            requests,
        } => rt.block_on(async {
            let t = match target.as_str() {
                "valetkey" => vk_target(&vk),
                "ssh-agent" => Target::SshAgent(vk.agent_socket.clone()),
                "echo" => Target::Echo(vk.agent_socket.clone()),
                other => bail!("unknown target {other}; use valetkey, ssh-agent or echo"),
            };
            let mut run = load::run(&t, connections, Budget::Requests(requests)).await?;
            let s = run.samples.summary();
            println!("{}", serde_json::to_string(&s)?);
            if s.errors > 0 {
                bail!("{} requests failed", s.errors);
            }
            Ok(())
        }),
    }
}

/// 1,000 connections need more than the usual 1,024 descriptors.
fn raise_nofile() {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let l = getrlimit(Resource::Nofile);
    let _ = setrlimit(
        Resource::Nofile,
        Rlimit {
            current: l.maximum,
            maximum: l.maximum,
        },
    );
}

/// Sequential cached `token.get`s through `valetkey_ipc::Client`.
async fn client_latency(
    socket: &std::path::Path,
    agent: &str,
    provider: &str,
    scope: &str,
    n: usize,
) -> anyhow::Result<Summary> {
    let mut c = valetkey_ipc::Client::connect(socket).await?;
    c.hello(valetkey_ipc::methods::AgentInfo {
        name: agent.into(),
        version: String::new(),
        purpose: "SDK latency comparison".into(),
    })
    .await?;
    let scopes = [scope];
    for _ in 0..100 {
        c.token(provider, &scopes).await?;
    }
    let mut s = Samples::default();
    let start = std::time::Instant::now();
    for _ in 0..n {
        let t = std::time::Instant::now();
        c.token(provider, &scopes).await?;
        s.ns.push(t.elapsed().as_nanos() as u64);
    }
    s.secs = start.elapsed().as_secs_f64();
    Ok(s.summary())
}

fn vk_target(vk: &VkArgs) -> Target {
    Target::Valetkey {
        socket: vk.agent_socket.clone(),
        provider: vk.provider.clone(),
        scope: vk.scope.clone(),
    }
}

type Table = BTreeMap<usize, Vec<(String, Summary)>>;

async fn compare(a: CompareArgs) -> anyhow::Result<()> {
    let mut targets = vec![
        vk_target(&a.vk),
        Target::SshAgent(a.ssh_socket.clone()),
        Target::Echo(a.echo_socket.clone()),
    ];
    if let Some(k) = &a.keychain {
        let (service, username) = k.split_once('/').context("--keychain service/username")?;
        targets.push(Target::Keychain {
            service: service.into(),
            username: username.into(),
        });
    }
    // Reply sizes: the baselines are meant to carry as many bytes as we do.
    let mut sizes = BTreeMap::new();
    for t in &targets {
        sizes.insert(t.name(), t.connect().await?.call().await?);
    }
    println!("reply bytes: {sizes:?}");
    let idle_rss = {
        let c = targets[0].connect().await?;
        c.server_pid().and_then(load::rss_kib)
    };

    let mut table: Table = BTreeMap::new();
    let mut loaded_rss: BTreeMap<&str, (usize, u64)> = BTreeMap::new();
    let budget = match a.requests {
        Some(n) => Budget::Requests(n),
        None => Budget::Time(a.duration / a.rounds.max(1) as u32),
    };
    for &c in &a.concurrency {
        // The keychain is the per-request cost of a broker without a
        // cache; one client is the comparison that matters.
        let here: Vec<&Target> = targets
            .iter()
            .filter(|t| c == 1 || !matches!(t, Target::Keychain { .. }))
            .collect();
        let mut acc: Vec<Samples> = vec![Samples::default(); here.len()];
        for _ in 0..a.rounds.max(1) {
            for (i, t) in here.iter().enumerate() {
                let run = load::run(t, c, budget)
                    .await
                    .with_context(|| format!("{} with {c} connections", t.name()))?;
                // Keep the largest RSS seen at the largest concurrency.
                if let Some(kib) = run.rss_kib {
                    let e = loaded_rss.entry(t.name()).or_insert((c, kib));
                    *e = (*e).max((c, kib));
                }
                acc[i].merge(run.samples);
            }
        }
        let row = here
            .iter()
            .zip(acc.iter_mut())
            .map(|(t, s)| (t.name().to_string(), s.summary()))
            .collect();
        table.insert(c, row);
    }
    print_table(&table);

    let mut extra = serde_json::Map::new();
    if let Some(dir) = &a.bin_dir {
        extra.insert("startup_us".into(), startup(dir, a.process_runs, 0)?);
        extra.insert(
            "startup_200k_audit_us".into(),
            startup(dir, a.process_runs, 200_000)?,
        );
        extra.insert("oneshot_us".into(), oneshot(dir, &a, a.process_runs)?);
    }
    if a.cold_agents > 0 {
        extra.insert("cold".into(), cold(&a).await?);
    }
    let rss = json!({
        "valetkeyd_idle_kib": idle_rss,
        "with_connections": loaded_rss.iter().map(|(k, (c, kib))| (k.to_string(), json!({"connections": c, "kib": kib}))).collect::<serde_json::Map<_, _>>(),
    });
    println!("rss: {rss}");
    for (k, v) in &extra {
        println!("{k}: {v}");
    }
    let report = json!({
        "machine": machine(),
        "params": {"concurrency": a.concurrency, "duration_per_point_s": a.duration.as_secs_f64(), "rounds": a.rounds, "requests_per_round": a.requests},
        "reply_bytes": sizes,
        "results": table.iter().map(|(c, row)| json!({"connections": c, "targets": row.iter().map(|(n, s)| (n.clone(), serde_json::to_value(s).unwrap_or_default())).collect::<serde_json::Map<_, _>>()})).collect::<Vec<_>>(),
        "rss": rss,
        "extra": extra,
    });
    if let Some(p) = &a.json {
        std::fs::write(p, serde_json::to_string_pretty(&report)?)?;
    }
    if let Some(p) = &a.svg {
        let names: Vec<String> = table
            .values()
            .next()
            .map(|r| r.iter().map(|(n, _)| n.clone()).collect())
            .unwrap_or_default();
        let series: Vec<svg::Series> = names
            .iter()
            .filter(|n| n.as_str() != "keychain")
            .map(|n| svg::Series {
                name: n.clone(),
                points: table
                    .iter()
                    .filter_map(|(c, row)| {
                        row.iter()
                            .find(|(m, _)| m == n)
                            .map(|(_, s)| (*c, s.p50_us, s.p99_us))
                    })
                    .collect(),
            })
            .collect();
        std::fs::write(
            p,
            svg::render(
                "cached token.get vs baselines (closed loop, 2 vCPU)",
                &series,
            ),
        )?;
    }
    let errors: u64 = table.values().flatten().map(|(_, s)| s.errors).sum();
    if errors > 0 {
        bail!("{errors} requests failed; the figures above are not valid");
    }
    Ok(())
}

fn print_table(table: &Table) {
    println!(
        "{:>6} {:<10} {:>10} {:>9} {:>9} {:>9} {:>10} {:>13} {:>13} {:>9}",
        "conns",
        "target",
        "req/s",
        "p50 µs",
        "p99 µs",
        "p99.9 µs",
        "cpu µs/req",
        "p50 ×ssh/×echo",
        "rps ×ssh",
        "cpu ×ssh"
    );
    for (c, row) in table {
        let base = |n: &str| row.iter().find(|(m, _)| m == n).map(|(_, s)| *s);
        let (ssh, echo) = (base("ssh-agent"), base("echo"));
        for (n, s) in row {
            println!(
                "{c:>6} {n:<10} {:>10.0} {:>9.1} {:>9.1} {:>9.1} {:>10.2} {:>6.2}/{:<6.2} {:>13.2} {:>9.2}",
                s.rps,
                s.p50_us,
                s.p99_us,
                s.p999_us,
                s.server_cpu_us_per_req,
                ssh.map_or(f64::NAN, |b| s.p50_us / b.p50_us),
                echo.map_or(f64::NAN, |b| s.p50_us / b.p50_us),
                ssh.map_or(f64::NAN, |b| s.rps / b.rps),
                ssh.map_or(f64::NAN, |b| s.server_cpu_us_per_req / b.server_cpu_us_per_req),
            );
        }
    }
}

fn summary_json(rows: Vec<(String, Samples)>) -> serde_json::Value {
    rows.into_iter()
        .map(|(n, mut s)| {
            let m = s.summary();
            (n, json!({"runs": m.requests, "p50_us": m.p50_us, "p99_us": m.p99_us, "max_us": m.max_us}))
        })
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// exec → connectable socket: valetkeyd (with this session's config and a
/// data dir of its own, its audit trail pre-filled with `records` rows)
/// against `ssh-agent -D`.
fn startup(
    bin: &std::path::Path,
    runs: usize,
    records: usize,
) -> anyhow::Result<serde_json::Value> {
    let scratch = procs::Scratch::new(&format!("startup-{records}"))?;
    let vk_sock = scratch.0.join("run/agent.sock");
    let ssh_sock = scratch.0.join("ssh.sock");
    if records > 0 {
        // One start makes the database; then the trail is filled.
        let mut c = Command::new(bin.join("valetkeyd"));
        c.arg("--socket")
            .arg(&vk_sock)
            .env("VALETKEY_DATA_DIR", scratch.0.join("data"))
            .env("RUST_LOG", "warn");
        procs::time_to_socket(c, &vk_sock)?;
        procs::fill_audit(&scratch.0.join("data/state.db"), records)?;
    }
    let rows = procs::interleaved(&["valetkeyd", "ssh-agent"], runs, |i| {
        if i == 0 {
            let mut c = Command::new(bin.join("valetkeyd"));
            c.arg("--socket")
                .arg(&vk_sock)
                .env("VALETKEY_DATA_DIR", scratch.0.join("data"))
                .env("RUST_LOG", "warn");
            procs::time_to_socket(c, &vk_sock)
        } else {
            let mut c = Command::new("ssh-agent");
            c.arg("-D").arg("-a").arg(&ssh_sock);
            procs::time_to_socket(c, &ssh_sock)
        }
    })?;
    Ok(summary_json(rows))
}

/// A one-shot command as a whole process.
fn oneshot(
    bin: &std::path::Path,
    a: &CompareArgs,
    runs: usize,
) -> anyhow::Result<serde_json::Value> {
    let mut names = vec!["valetkey token", "ssh-add -L"];
    if a.keychain.is_some() {
        names.push("secret-tool lookup");
    }
    let rows = procs::interleaved(&names, runs, |i| {
        let c = match i {
            0 => {
                let mut c = Command::new(bin.join("valetkey"));
                c.args(["token", &a.vk.provider, "-s", &a.vk.scope])
                    .env("VALETKEY_SOCKET", &a.vk.agent_socket);
                c
            }
            1 => {
                let mut c = Command::new("ssh-add");
                c.arg("-L").env("SSH_AUTH_SOCK", &a.ssh_socket);
                c
            }
            _ => {
                let (s, u) = a
                    .keychain
                    .as_deref()
                    .and_then(|k| k.split_once('/'))
                    .unwrap_or_default();
                let mut c = Command::new("secret-tool");
                c.args(["lookup", "service", s, "username", u]);
                c
            }
        };
        procs::time_command(c)
    })?;
    Ok(summary_json(rows))
}

/// Cache misses: each `bench-cold-N` agent's first token.get, and the
/// provider's own time for each refresh, measured inside the provider.
async fn cold(a: &CompareArgs) -> anyhow::Result<serde_json::Value> {
    let mut client = Samples::default();
    for i in 0..a.cold_agents {
        let d = targets::cold_token_get(
            &a.vk.agent_socket,
            &format!("bench-cold-{i}"),
            &a.vk.provider,
            &a.vk.scope,
        )
        .await?;
        client.ns.push(d.as_nanos() as u64);
    }
    let c = client.summary();
    let mut out =
        json!({"runs": c.requests, "token_get_p50_us": c.p50_us, "token_get_max_us": c.max_us});
    if let Some(addr) = &a.provider_control {
        let stats = http_get_json(addr, "/stats")?;
        let mut prov: Vec<u64> = stats["refresh_us"]
            .as_array()
            .map(|v| v.iter().filter_map(|x| x.as_u64()).collect())
            .unwrap_or_default();
        let n = prov.len();
        prov = prov.split_off(n.saturating_sub(a.cold_agents));
        prov.sort_unstable();
        if let Some(&p50) = prov.get(prov.len() / 2) {
            out["provider_refresh_p50_us"] = json!(p50);
            out["overhead_p50_us"] = json!(c.p50_us - p50 as f64);
        }
    }
    Ok(out)
}

fn http_get_json(addr: &str, path: &str) -> anyhow::Result<serde_json::Value> {
    let mut s = std::net::TcpStream::connect(addr).with_context(|| format!("connect {addr}"))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut body = String::new();
    s.read_to_string(&mut body)?;
    let json = body.split_once("\r\n\r\n").map(|x| x.1).unwrap_or_default();
    Ok(serde_json::from_str(json)?)
}

fn machine() -> serde_json::Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|l| l.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_default();
    json!({
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "cpu": cpu,
        "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim(),
    })
}
