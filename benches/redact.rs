//! Throughput of the redactor on secret-free CI output, the common case: every log line
//! goes through it, so it must not be the bottleneck of a 1 GiB log (target ≥ 300 MB/s).
//!
//! `cargo bench --bench redact`

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kitefix::logs::redact::Redactor;
use secrecy::SecretString;

/// About `target` bytes of typical build output: compiler progress, test results, paths,
/// a few URLs (which hit the `://` trigger and take the slow path), no secrets.
fn ci_log(target: usize) -> String {
    let templates = [
        "   Compiling serde_derive v1.0.{i} (/var/lib/buildkite-agent/builds/agent-3/acme/app)",
        "test module_{i}::tests::parses_input_{i} ... ok",
        "npm WARN deprecated inflight@1.0.{i}: This module is not supported, and leaks memory.",
        "warning: unused variable: `value_{i}` --> src/worker/step_{i}.rs:{i}:9",
        "[2026-08-21T10:00:{i}Z] INFO  app::queue: processed message id={i} in 12ms",
        "  File \"/usr/lib/python3.11/site-packages/pkg/mod_{i}.py\", line {i}, in run",
        "Downloading https://static.crates.io/crates/tokio/tokio-1.{i}.0.crate",
        "    at Object.<anonymous> (/app/src/components/Widget{i}.test.tsx:{i}:15)",
    ];
    let mut out = String::with_capacity(target + 256);
    let mut i = 0usize;
    while out.len() < target {
        out.push_str(&templates[i % templates.len()].replace("{i}", &(i % 97).to_string()));
        out.push('\n');
        i += 1;
    }
    out
}

/// A job env of the usual size: ~100 values, most of them Buildkite metadata.
fn job_redactor() -> Redactor {
    let values: Vec<SecretString> = (0..100)
        .map(|i| SecretString::from(format!("value-{i}-of-the-job-env-{}", i * 7919)))
        .collect();
    Redactor::builder().secrets(&values).build().expect("builds")
}

fn bench(c: &mut Criterion) {
    let log = ci_log(8 << 20);
    let redactor = job_redactor();
    let mut group = c.benchmark_group("redact_secret_free");
    group.throughput(Throughput::Bytes(log.len() as u64));
    group.bench_function("whole_text", |b| b.iter(|| black_box(redactor.redact(black_box(&log)))));
    group.bench_function("line_by_line", |b| {
        b.iter(|| {
            let mut lines = redactor.line_redactor();
            let mut kept = 0usize;
            for line in log.lines() {
                kept += lines.redact_line(black_box(line)).len();
            }
            kept
        })
    });
    group.finish();
    c.bench_function("build_redactor_100_env_values", |b| b.iter(job_redactor));
}

criterion_group!(benches, bench);
criterion_main!(benches);
