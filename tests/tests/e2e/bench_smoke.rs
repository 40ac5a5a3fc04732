//! A smoke run of the benchmark (`bench/run.sh --smoke`: a few hundred
//! requests per target), so the harness that produces docs/BENCHMARKS.md
//! cannot rot. It checks that every target answered, nothing failed, and
//! the report and plot were written; it asserts no speed.

use std::process::Command;

use crate::harness::{bin_dir, repo};

#[test]
fn the_benchmark_harness_runs_end_to_end() {
    let out = tempfile::tempdir().expect("tmp");
    let target = bin_dir();
    let run = Command::new("bash")
        .arg(repo().join("../bench/run.sh"))
        .args(["--smoke", "--profile"])
        .arg(target.file_name().expect("profile"))
        .arg("--out")
        .arg(out.path())
        .env("CARGO_TARGET_DIR", target.parent().expect("target dir"))
        .output()
        .expect("bench/run.sh");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr),
    );
    assert!(run.status.success(), "{stdout}\n{stderr}");
    let report: serde_json::Value = serde_json::from_slice(
        &std::fs::read(out.path().join("results.json")).expect("results.json"),
    )
    .expect("json");
    let results = report["results"].as_array().expect("results");
    assert_eq!(results.len(), 2, "concurrency 1 and 16: {report}");
    let one = &results[0]["targets"];
    for t in ["valetkey", "ssh-agent", "echo", "keychain"] {
        assert!(
            one[t]["requests"].as_u64().unwrap_or(0) >= 200,
            "{t}: {one}"
        );
        assert_eq!(one[t]["errors"], 0, "{t}: {one}");
        assert!(one[t]["p50_us"].as_f64().unwrap_or(0.0) > 0.0, "{t}: {one}");
    }
    // The baselines carry as many bytes as valetkey's reply.
    let sizes = &report["reply_bytes"];
    assert_eq!(sizes["ssh-agent"], sizes["valetkey"], "{sizes}");
    assert_eq!(sizes["echo"], sizes["valetkey"], "{sizes}");
    let extra = &report["extra"];
    for k in ["startup_us", "oneshot_us", "cold"] {
        assert!(extra[k].is_object(), "{k} missing: {extra}");
    }
    assert!(
        extra["cold"]["provider_refresh_p50_us"].as_u64().is_some(),
        "{extra}"
    );
    assert!(report["rss"]["valetkeyd_idle_kib"].as_u64().unwrap_or(0) > 0);
    let svg = std::fs::read_to_string(out.path().join("latency.svg")).expect("svg");
    assert!(
        svg.contains("<polyline") && svg.contains(">valetkey<"),
        "{svg}"
    );
    assert!(stdout.contains("p50 ×ssh/×echo"), "{stdout}");
}
