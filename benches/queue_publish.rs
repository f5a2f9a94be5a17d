//! Publish throughput of a queue backend without HTTP in front: how many durable
//! publishes per second the queue itself takes, and their latency. The webhook load
//! script (`benches/load/webhooks.sh`) runs this beside `wrk` against the HTTP receiver,
//! so the two rates can be compared in one run.
//!
//! `cargo bench --bench queue_publish -- [--queue embedded|rabbitmq] [--messages N]
//!  [--concurrency C] [--store URL] [--amqp URL]`

use std::sync::Arc;
use std::time::{Duration, Instant};

use kitefix::config::StoreBackend;
use kitefix::queue::embedded::EmbeddedQueue;
use kitefix::queue::rabbitmq::{RabbitMqOptions, RabbitMqQueue};
use kitefix::queue::{Queue, QueueMessage};
use kitefix::store::Store;
use kitefix::webhook::signature;
use secrecy::SecretString;

struct Args {
    queue: String,
    messages: usize,
    concurrency: usize,
    store: String,
    amqp: String,
}

fn parse_args() -> Args {
    let mut args = Args {
        queue: "rabbitmq".into(),
        messages: 20_000,
        concurrency: 32,
        store: String::new(),
        amqp: "amqp://guest:guest@127.0.0.1:5672/%2f".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--queue" => args.queue = value(),
            "--messages" => args.messages = value().parse().expect("--messages N"),
            "--concurrency" => args.concurrency = value().parse().expect("--concurrency N"),
            "--store" => args.store = value(),
            "--amqp" => args.amqp = value(),
            "--bench" => {} // passed by `cargo bench`
            other => panic!("unknown flag {other}"),
        }
    }
    args
}

fn message(n: usize, run: u32) -> QueueMessage {
    let payload = serde_json::json!({
        "event": "build.finished",
        "build": {
            "id": format!("{run:08x}-0000-4000-8000-{n:012x}"),
            "url": format!("https://api.buildkite.com/v2/organizations/acme/pipelines/web-app/builds/{n}"),
            "number": n, "state": "failed", "commit": "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678",
            "branch": "main", "finished_at": "2026-11-25T10:00:00.000Z"
        },
        "pipeline": {"slug": "web-app"}
    });
    let body = payload.to_string();
    // `parse` takes only a verified body; token mode is the cheapest proof.
    let token = SecretString::from("bench-token".to_owned());
    let credential = signature::Credential::Token("bench-token".to_owned());
    let verified = signature::verify(&token, &credential, body.as_bytes(), 0, 0).unwrap();
    match kitefix::webhook::event::parse(Some("build.finished"), verified).unwrap() {
        kitefix::webhook::WebhookEvent::Failed(event) => QueueMessage::new(*event, None),
        _ => unreachable!(),
    }
}

fn main() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let args = parse_args();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(run(args));
}

async fn run(args: Args) {
    let dir = tempfile::tempdir().unwrap();
    let mut rabbit_cleanup = None;
    let queue: Arc<dyn Queue> = match args.queue.as_str() {
        "embedded" => {
            let url = if args.store.is_empty() {
                format!("sqlite://{}", dir.path().join("bench.db").display())
            } else {
                args.store.clone()
            };
            let backend = StoreBackend::parse(SecretString::from(url)).expect("a store URL");
            let store = Store::connect(&backend, 16).await.expect("store");
            Arc::new(EmbeddedQueue::new(store.db().clone(), Duration::from_secs(900), 8))
        }
        "rabbitmq" => {
            let rabbit = Arc::new(RabbitMqQueue::start(RabbitMqOptions {
                url: SecretString::from(args.amqp.clone()),
                prefix: format!("kitefix-bench-{}", uuid::Uuid::new_v4().simple()),
                max_attempts: 8,
                publish_timeout: Duration::from_secs(10),
                prefetch: 8,
            }));
            rabbit_cleanup = Some(rabbit.clone());
            rabbit
        }
        other => panic!("unknown queue {other}"),
    };
    // Connect (and declare the topology) before timing.
    queue.ping().await.expect("queue reachable");
    let run: u32 = rand::random();
    let messages: Arc<Vec<QueueMessage>> =
        Arc::new((0..args.messages).map(|n| message(n, run)).collect());
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency {
        let (queue, messages, next) = (queue.clone(), messages.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(message) = messages.get(i) else { break };
                let t = Instant::now();
                queue.publish(message).await.expect("publish");
                latencies.push(t.elapsed());
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.unwrap());
    }
    let elapsed = started.elapsed();
    if let Some(rabbit) = rabbit_cleanup {
        rabbit.delete_topology().await.expect("delete the benchmark's queues");
    }
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    println!(
        "RESULT queue={} messages={} concurrency={} rate={:.1}/s p50_ms={:.2} p99_ms={:.2}",
        args.queue,
        latencies.len(),
        args.concurrency,
        latencies.len() as f64 / elapsed.as_secs_f64(),
        pct(0.50).as_secs_f64() * 1000.0,
        pct(0.99).as_secs_f64() * 1000.0,
    );
}
