//! Prometheus metrics. Each `Application` owns its own `Registry` (not the global one),
//! so tests running several apps in one process see only their own numbers.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::queue::QueueDepth;

/// The metrics the receiver and the worker keep. Names start with `kitefix_`.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// Webhooks by event and outcome (`accepted`, `duplicate`, `ignored`, `unauthorized`…).
    pub webhooks: IntCounterVec,
    /// Seconds from "verified" to "durably queued", by queue kind.
    pub publish_seconds: HistogramVec,
    /// Messages waiting (`ready`), being worked on or delayed (`in_flight`), `dead`.
    pub queue_depth: IntGaugeVec,
    /// Deliveries by what became of them: `consumed`, `acked`, `retried`, `dead_lettered`.
    pub queue_messages: IntCounterVec,
    /// Builds the worker finished, by final state (`reported`, `skipped`, `failed`, `dead`).
    pub builds: IntCounterVec,
    /// Seconds a worker spent on one build, by outcome.
    pub build_seconds: HistogramVec,
    /// Failed jobs analysed, by the category the classifier gave.
    pub jobs_analysed: IntCounterVec,
}

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    registry.register(Box::new(c.clone())).expect("metric registered once");
    c
}

fn histogram(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
    buckets: Vec<f64>,
) -> HistogramVec {
    let h = HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels)
        .expect("valid metric");
    registry.register(Box::new(h.clone())).expect("metric registered once");
    h
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let queue_depth = IntGaugeVec::new(
            Opts::new(
                "kitefix_queue_depth",
                "Messages in the queue, by state (ready, in_flight, dead).",
            ),
            &["state"],
        )
        .expect("valid metric");
        registry.register(Box::new(queue_depth.clone())).expect("metric registered once");
        Self {
            webhooks: counter(
                &registry,
                "kitefix_webhooks_total",
                "Buildkite webhooks received, by event and outcome.",
                &["event", "outcome"],
            ),
            publish_seconds: histogram(
                &registry,
                "kitefix_queue_publish_seconds",
                "Time to durably queue an accepted event (publisher confirm or database commit).",
                &["queue"],
                vec![
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                ],
            ),
            queue_depth,
            queue_messages: counter(
                &registry,
                "kitefix_queue_messages_total",
                "Queue deliveries by outcome (consumed, acked, retried, dead_lettered).",
                &["outcome"],
            ),
            builds: counter(
                &registry,
                "kitefix_builds_total",
                "Builds the worker finished with, by final state.",
                &["state"],
            ),
            build_seconds: histogram(
                &registry,
                "kitefix_build_processing_seconds",
                "Time a worker spent on one build.",
                &["outcome"],
                vec![0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0],
            ),
            jobs_analysed: counter(
                &registry,
                "kitefix_jobs_analysed_total",
                "Failed jobs analysed, by failure category.",
                &["category"],
            ),
            registry,
        }
    }

    /// The registry, for components that register their own metrics (API clients).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub(crate) fn set_queue_depth(&self, depth: QueueDepth) {
        self.queue_depth.with_label_values(&["ready"]).set(depth.ready as i64);
        self.queue_depth.with_label_values(&["in_flight"]).set(depth.in_flight as i64);
        self.queue_depth.with_label_values(&["dead"]).set(depth.dead as i64);
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("text encoding cannot fail");
        String::from_utf8(buf).expect("the text format is UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
