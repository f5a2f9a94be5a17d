//! The receiver's CPU work per webhook, without I/O: signature verification and payload
//! parsing. `cargo bench --bench webhook`.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kitefix::webhook::{event, signature};
use secrecy::SecretString;

fn payload() -> Vec<u8> {
    std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/examples/build-finished-failed.json"
    ))
    .expect("example payload")
}

fn verify(c: &mut Criterion) {
    let body = payload();
    let token = SecretString::from("bench-webhook-token-0123456789".to_owned());
    let header = signature::sign("bench-webhook-token-0123456789", 1_700_000_000, &body);
    let mut group = c.benchmark_group("webhook");
    group.throughput(Throughput::Elements(1));
    let verify_once = || {
        let credential =
            signature::Credential::from_headers(Some(black_box(&header)), None).unwrap();
        signature::verify(&token, &credential, black_box(&body), 1_700_000_000, 300).unwrap()
    };
    group.bench_function("verify_signature", |b| b.iter(verify_once));
    // Verified once outside the loop (the proof is `Copy`), so this measures parsing only.
    let verified = verify_once();
    group.bench_function("parse_build_finished", |b| {
        b.iter(|| event::parse(Some("build.finished"), black_box(verified)).unwrap())
    });
    group.finish();
}

criterion_group!(benches, verify);
criterion_main!(benches);
