//! Classifier throughput on one core: a generated 64 MiB Buildkite log with a realistic
//! mix of lines, and the real ci-eval logs when `../shared/ci-eval` (or `$KITEFIX_CI_EVAL`)
//! is present (skipped otherwise). Criterion reports MB/s (Throughput::Bytes).

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kitefix::classify::{Classifier, JobMeta, classify_bytes};
use kitefix::logs::normalise::LineNormaliser;

#[path = "support/synth.rs"]
mod synth;

fn generated(c: &mut Criterion) {
    let mut log = Vec::new();
    synth::synth_log(64 << 20, &mut log);
    let classifier = match Classifier::embedded() {
        Ok(c) => c,
        Err(e) => panic!("embedded rules: {e}"),
    };
    let mut group = c.benchmark_group("generated-64MiB");
    group.throughput(Throughput::Bytes(log.len() as u64));
    group.sample_size(10);
    group.bench_function("normalise", |b| {
        b.iter(|| {
            let mut n = LineNormaliser::new();
            let mut lines = 0u64;
            for chunk in log.chunks(64 * 1024) {
                n.push(chunk, |_| lines += 1);
            }
            n.finish(|_| lines += 1);
            black_box(lines)
        })
    });
    group.bench_function("classify", |b| {
        b.iter(|| black_box(classify_bytes(&classifier, black_box(&log), JobMeta::default())))
    });
    group.finish();
}

fn ci_eval(c: &mut Criterion) {
    let root = match std::env::var_os("KITEFIX_CI_EVAL") {
        Some(dir) => Path::new(&dir).join("logs"),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/ci-eval/logs"),
    };
    let mut logs = Vec::new();
    for dir in std::fs::read_dir(&root).into_iter().flatten().flatten() {
        for file in std::fs::read_dir(dir.path()).into_iter().flatten().flatten() {
            if let Ok(bytes) = std::fs::read(file.path()) {
                logs.push(bytes);
            }
        }
    }
    if logs.is_empty() {
        eprintln!("ci-eval logs not found under {}: skipping that benchmark", root.display());
        return;
    }
    let classifier = match Classifier::embedded() {
        Ok(c) => c,
        Err(e) => panic!("embedded rules: {e}"),
    };
    let total: usize = logs.iter().map(Vec::len).sum();
    let mut group = c.benchmark_group("ci-eval");
    group.throughput(Throughput::Bytes(total as u64));
    group.sample_size(10);
    group.bench_function(format!("classify {} logs", logs.len()), |b| {
        b.iter(|| {
            for log in &logs {
                black_box(classify_bytes(&classifier, log, JobMeta::default()));
            }
        })
    });
    group.finish();
}

criterion_group!(benches, generated, ci_eval);
criterion_main!(benches);
