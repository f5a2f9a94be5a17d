//! The RabbitMQ queue (lapin), for deployments that outgrow one machine.
//!
//! Topology, declared (idempotently) on every connect, names prefixed by `queue.prefix`:
//! - `<p>.work` (direct) → `<p>.builds`: a durable **quorum** queue, the RabbitMQ
//!   recommendation for data safety ("Quorum Queues", rabbitmq.com/docs/quorum-queues).
//!   `x-delivery-limit` is set explicitly because the 3.x broker has no default: a message
//!   that crashes its worker over and over is dead-lettered instead of looping forever.
//!   `x-dead-letter-strategy=at-least-once` (with `x-overflow=reject-publish`, which it
//!   requires) so a dead letter cannot be lost in transit.
//! - `<p>.dlx` (direct) → `<p>.dead`: where poison and permanently failed messages wait,
//!   with the reason in the `x-kitefix-reason` header.
//! - `<p>.retry` (direct) → `<p>.retry.<tier>`: one queue per delay tier, each with
//!   `x-message-ttl` and a dead-letter route back to `<p>.work`. The broker here (Debian's
//!   3.10) has no delayed-message plugin, and a single TTL queue would hold a short delay
//!   behind a long one (messages only expire at the head), hence tiers.
//!
//! Publishing: persistent messages, `mandatory` (an unroutable message comes back as a
//! `basic.return` and counts as a failure even though the broker acks it), publisher
//! confirms awaited with a deadline. One task owns the publishing connection: callers
//! send requests over a bounded channel, so lapin lives on one runtime and the task can
//! reconnect and re-publish whatever was not confirmed, within each request's deadline
//! (lapin's own recovery is off by default and was unproven across broker restarts,
//! amqp-rs/lapin#450). Consuming uses its own connection, manual acks and a bounded
//! prefetch; an unacked delivery returns to the queue when that connection dies.

use std::collections::VecDeque;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ExchangeKind,
};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio::time::Instant;

use super::{Delivery, Queue, QueueDepth, QueueError, QueueMessage, Settle};

/// Delay tiers for retries. A retry waits in the smallest tier at least as long as the
/// delay asked for (waiting longer than a rate limit's reset is safe, shorter is not).
const RETRY_TIERS: [(&str, Duration); 6] = [
    ("5s", Duration::from_secs(5)),
    ("30s", Duration::from_secs(30)),
    ("2m", Duration::from_secs(120)),
    ("10m", Duration::from_secs(600)),
    ("30m", Duration::from_secs(1800)),
    ("1h", Duration::from_secs(3600)),
];

/// How many times this message went through a retry tier (our own count: RabbitMQ 4
/// ignores `x-death` on republished messages, docs/rabbitmq.md#retry-counting).
const ATTEMPT_HEADER: &str = "x-kitefix-retries";
const REASON_HEADER: &str = "x-kitefix-reason";
const WORK_ROUTING_KEY: &str = "build";
const DEAD_ROUTING_KEY: &str = "dead";

/// Heartbeats every 10 s: a dead peer is noticed in ~20 s instead of the ~11 minutes
/// TCP keepalive takes on Linux defaults (rabbitmq.com/docs/heartbeats recommends 5–20 s).
const HEARTBEAT_SECS: u16 = 10;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Connect, declare the topology and enable confirms, all within this.
const LINK_TIMEOUT: Duration = Duration::from_secs(5);
/// Pending publishes allowed before callers are told the queue is unavailable.
const PUBLISH_BACKLOG: usize = 1024;

#[derive(Debug, Clone)]
struct Names {
    work: String,
    builds: String,
    dlx: String,
    dead: String,
    retry: String,
}

impl Names {
    fn new(prefix: &str) -> Self {
        Self {
            work: format!("{prefix}.work"),
            builds: format!("{prefix}.builds"),
            dlx: format!("{prefix}.dlx"),
            dead: format!("{prefix}.dead"),
            retry: format!("{prefix}.retry"),
        }
    }

    fn retry_queue(&self, tier: &str) -> String {
        format!("{}.{tier}", self.retry)
    }
}

/// Settings the backend needs, from `queue.*`.
#[derive(Debug, Clone)]
pub struct RabbitMqOptions {
    pub url: SecretString,
    pub prefix: String,
    pub max_attempts: u32,
    pub publish_timeout: Duration,
    pub prefetch: u16,
}

pub struct RabbitMqQueue {
    commands: mpsc::Sender<Command>,
    consumer: Mutex<Option<ConsumerState>>,
    options: RabbitMqOptions,
    names: Names,
}

struct ConsumerState {
    // Kept so the connection lives as long as the consumer.
    _connection: Connection,
    consumer: lapin::Consumer,
}

enum Route {
    Work,
    Retry(&'static str),
    Dead,
}

struct PublishRequest {
    route: Route,
    payload: Vec<u8>,
    headers: FieldTable,
    deadline: Instant,
    reply: oneshot::Sender<Result<(), QueueError>>,
}

enum Command {
    Publish(PublishRequest),
    Depth(oneshot::Sender<Result<QueueDepth, QueueError>>),
    Ping(oneshot::Sender<Result<(), QueueError>>),
}

impl RabbitMqQueue {
    /// Starts the publisher task on the current tokio runtime. Nothing connects yet: a
    /// broker that is down at start-up makes publishes answer 503 until it is back.
    pub fn start(options: RabbitMqOptions) -> Self {
        let names = Names::new(&options.prefix);
        let (commands, rx) = mpsc::channel(PUBLISH_BACKLOG);
        tokio::spawn(Publisher::new(options.clone(), names.clone()).run(rx));
        Self { commands, consumer: Mutex::new(None), options, names }
    }

    /// Deletes every queue and exchange under this prefix, messages included. For test
    /// and benchmark clean-up; each quorum queue is a Raft group the broker keeps alive,
    /// so leftovers slow down every later broker restart.
    pub async fn delete_topology(&self) -> Result<(), QueueError> {
        let connection = connect(&self.options.url).await?;
        let channel = connection.create_channel().await.map_err(unavailable)?;
        let queues = [self.names.builds.clone(), self.names.dead.clone()]
            .into_iter()
            .chain(RETRY_TIERS.iter().map(|(tier, _)| self.names.retry_queue(tier)));
        for queue in queues {
            channel
                .queue_delete(queue.as_str().into(), Default::default())
                .await
                .map_err(unavailable)?;
        }
        for exchange in [&self.names.work, &self.names.dlx, &self.names.retry] {
            channel
                .exchange_delete(exchange.as_str().into(), Default::default())
                .await
                .map_err(unavailable)?;
        }
        let _ = connection.close(200, "topology deleted".into()).await;
        Ok(())
    }

    async fn send(
        &self,
        route: Route,
        payload: Vec<u8>,
        headers: FieldTable,
    ) -> Result<(), QueueError> {
        let (reply, answer) = oneshot::channel();
        let deadline = Instant::now() + self.options.publish_timeout;
        let request = PublishRequest { route, payload, headers, deadline, reply };
        self.commands
            .try_send(Command::Publish(request))
            .map_err(|_| QueueError::Unavailable("publish backlog is full".into()))?;
        // The publisher answers every request by its deadline; the extra second only
        // guards against the task having died.
        match tokio::time::timeout_at(deadline + Duration::from_secs(1), answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) | Err(_) => Err(QueueError::Unavailable("publisher stopped".into())),
        }
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, QueueError>>) -> Command,
    ) -> Result<T, QueueError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .try_send(make(reply))
            .map_err(|_| QueueError::Unavailable("publish backlog is full".into()))?;
        match tokio::time::timeout(self.options.publish_timeout + Duration::from_secs(1), answer)
            .await
        {
            Ok(Ok(result)) => result,
            Ok(Err(_)) | Err(_) => Err(QueueError::Unavailable("publisher stopped".into())),
        }
    }

    async fn connect_consumer(&self) -> Result<ConsumerState, QueueError> {
        let connection = connect(&self.options.url).await?;
        let channel = connection.create_channel().await.map_err(unavailable)?;
        declare_topology(&channel, &self.names, self.options.max_attempts).await?;
        // Prefetch bounds what one crashed worker hands back at once and how much memory
        // unacked deliveries take (rabbitmq.com/docs/confirms, "Channel Prefetch Setting").
        channel
            .basic_qos(self.options.prefetch, BasicQosOptions::default())
            .await
            .map_err(unavailable)?;
        let consumer = channel
            .basic_consume(
                self.names.builds.as_str().into(),
                ShortString::from(format!("kitefix-{}", uuid::Uuid::new_v4())),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(unavailable)?;
        Ok(ConsumerState { _connection: connection, consumer })
    }
}

fn unavailable(e: lapin::Error) -> QueueError {
    QueueError::Unavailable(e.to_string())
}

async fn connect(url: &SecretString) -> Result<Connection, QueueError> {
    let mut uri: lapin::uri::AMQPUri = url
        .expose_secret()
        .parse()
        .map_err(|_| QueueError::Unavailable("queue.url is not an AMQP URL".into()))?;
    uri.query.heartbeat = Some(HEARTBEAT_SECS);
    let connecting = Connection::connect_uri(uri, ConnectionProperties::default());
    match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
        Ok(Ok(connection)) => Ok(connection),
        Ok(Err(e)) => Err(unavailable(e)),
        Err(_) => Err(QueueError::Unavailable("timed out connecting to RabbitMQ".into())),
    }
}

fn table(entries: &[(&str, AMQPValue)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in entries {
        t.insert((*k).into(), v.clone());
    }
    t
}

fn text(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s))
}

/// Declares exchanges, queues and bindings. Declaring is idempotent as long as the
/// arguments match; a mismatch (e.g. another `x-delivery-limit`) fails loudly with
/// PRECONDITION_FAILED instead of silently running with the old settings.
async fn declare_topology(
    channel: &Channel,
    names: &Names,
    max_attempts: u32,
) -> Result<(), QueueError> {
    let durable_exchange = ExchangeDeclareOptions { durable: true, ..Default::default() };
    let durable_queue = QueueDeclareOptions { durable: true, ..Default::default() };
    for exchange in [&names.work, &names.dlx, &names.retry] {
        channel
            .exchange_declare(
                exchange.as_str().into(),
                ExchangeKind::Direct,
                durable_exchange,
                FieldTable::default(),
            )
            .await
            .map_err(unavailable)?;
    }
    let quorum = [
        ("x-queue-type", text("quorum")),
        ("x-dead-letter-strategy", text("at-least-once")),
        ("x-overflow", text("reject-publish")),
    ];
    let mut builds = quorum.to_vec();
    builds.extend([
        ("x-delivery-limit", AMQPValue::LongLongInt(i64::from(max_attempts))),
        ("x-dead-letter-exchange", text(&names.dlx)),
        ("x-dead-letter-routing-key", text(DEAD_ROUTING_KEY)),
    ]);
    let queues: Vec<(String, FieldTable, &String, &str)> =
        std::iter::once((names.builds.clone(), table(&builds), &names.work, WORK_ROUTING_KEY))
            .chain(std::iter::once((
                names.dead.clone(),
                table(&[("x-queue-type", text("quorum"))]),
                &names.dlx,
                DEAD_ROUTING_KEY,
            )))
            .chain(RETRY_TIERS.iter().map(|(tier, ttl)| {
                let mut args = quorum.to_vec();
                args.extend([
                    ("x-message-ttl", AMQPValue::LongLongInt(ttl.as_millis() as i64)),
                    ("x-dead-letter-exchange", text(&names.work)),
                    ("x-dead-letter-routing-key", text(WORK_ROUTING_KEY)),
                ]);
                (names.retry_queue(tier), table(&args), &names.retry, *tier)
            }))
            .collect();
    for (queue, args, exchange, key) in queues {
        channel
            .queue_declare(queue.as_str().into(), durable_queue, args)
            .await
            .map_err(unavailable)?;
        channel
            .queue_bind(
                queue.as_str().into(),
                exchange.as_str().into(),
                key.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(unavailable)?;
    }
    Ok(())
}

/// The task that owns the publishing connection.
struct Publisher {
    options: RabbitMqOptions,
    names: Names,
    link: Option<(Connection, Channel)>,
    /// Requests not yet handed to the current channel (also those whose channel died
    /// before the confirm came: they are published again after reconnecting).
    waiting: VecDeque<PublishRequest>,
    next_connect: Instant,
    connect_backoff: Duration,
}

/// The broker's answer to one publish, or the deadline passing first.
type ConfirmOutcome = Result<Result<Confirmation, lapin::Error>, tokio::time::error::Elapsed>;
type ConfirmResult = (PublishRequest, ConfirmOutcome);
type Inflight = FuturesUnordered<futures::future::BoxFuture<'static, ConfirmResult>>;

impl Publisher {
    fn new(options: RabbitMqOptions, names: Names) -> Self {
        Self {
            options,
            names,
            link: None,
            waiting: VecDeque::new(),
            next_connect: Instant::now(),
            connect_backoff: Duration::from_millis(200),
        }
    }

    async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let mut inflight = Inflight::new();
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut open = true;
        loop {
            tokio::select! {
                command = commands.recv(), if open => match command {
                    Some(Command::Publish(request)) => self.waiting.push_back(request),
                    Some(Command::Depth(reply)) => { let _ = reply.send(self.depth().await); }
                    Some(Command::Ping(reply)) => { let _ = reply.send(self.ensure_link().await.map(|_| ())); }
                    None => open = false,
                },
                Some((request, outcome)) = inflight.next(), if !inflight.is_empty() => {
                    self.settle_confirm(request, outcome);
                }
                _ = tick.tick() => {}
            }
            if !open && inflight.is_empty() && self.waiting.is_empty() {
                break;
            }
            self.expire_waiting();
            if !self.waiting.is_empty() && self.ensure_link().await.is_ok() {
                self.publish_waiting(&mut inflight).await;
            }
        }
        if let Some((connection, _)) = self.link.take() {
            let _ = connection.close(200, "kitefix shutting down".into()).await;
        }
    }

    fn settle_confirm(&mut self, request: PublishRequest, outcome: ConfirmOutcome) {
        let result = match outcome {
            Ok(Ok(Confirmation::Ack(None))) | Ok(Ok(Confirmation::NotRequested)) => Ok(()),
            // Acked but returned: it reached no queue (docs/rabbitmq.md#publisher-confirms).
            Ok(Ok(Confirmation::Ack(Some(returned)))) => Err(QueueError::Refused(format!(
                "returned by the broker as unroutable: {}",
                returned.reply_text
            ))),
            Ok(Ok(Confirmation::Nack(_))) => {
                Err(QueueError::Refused("nacked by the broker".into()))
            }
            // The channel died before the confirm: the message may or may not be on disk.
            // Publish it again on a fresh connection while its deadline allows; the worker
            // dedupes a possible duplicate.
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "publisher connection lost, re-publishing unconfirmed message");
                self.link = None;
                self.waiting.push_front(request);
                return;
            }
            Err(_) => Err(QueueError::Unavailable("the broker did not confirm in time".into())),
        };
        let _ = request.reply.send(result);
    }

    fn expire_waiting(&mut self) {
        let now = Instant::now();
        let (expired, kept): (Vec<_>, Vec<_>) =
            self.waiting.drain(..).partition(|r| r.deadline <= now);
        self.waiting = kept.into();
        for request in expired {
            let _ =
                request.reply.send(Err(QueueError::Unavailable("RabbitMQ is unreachable".into())));
        }
    }

    /// Connects (declaring the topology and enabling confirms) unless connected, backing
    /// off between failed attempts so an outage is not a connect storm.
    async fn ensure_link(&mut self) -> Result<&Channel, QueueError> {
        if let Some((connection, _)) = &self.link
            && !connection.status().connected()
        {
            self.link = None;
        }
        if self.link.is_none() {
            if Instant::now() < self.next_connect {
                return Err(QueueError::Unavailable(
                    "RabbitMQ is unreachable (reconnecting)".into(),
                ));
            }
            match self.open_link().await {
                Ok(link) => {
                    tracing::info!("connected to RabbitMQ for publishing");
                    self.connect_backoff = Duration::from_millis(200);
                    self.link = Some(link);
                }
                Err(e) => {
                    self.next_connect = Instant::now() + self.connect_backoff;
                    self.connect_backoff = (self.connect_backoff * 2).min(Duration::from_secs(5));
                    tracing::warn!(error = %e, retry_in = ?self.connect_backoff, "cannot connect to RabbitMQ");
                    return Err(e);
                }
            }
        }
        Ok(&self.link.as_ref().expect("set above").1)
    }

    async fn open_link(&self) -> Result<(Connection, Channel), QueueError> {
        // A broker still booting can accept the TCP connection and then sit on the
        // declarations; bound the whole set-up, not only the connect.
        tokio::time::timeout(LINK_TIMEOUT, self.open_link_unbounded()).await.map_err(|_| {
            QueueError::Unavailable("timed out setting up the RabbitMQ channel".into())
        })?
    }

    async fn open_link_unbounded(&self) -> Result<(Connection, Channel), QueueError> {
        let connection = connect(&self.options.url).await?;
        let channel = connection.create_channel().await.map_err(unavailable)?;
        declare_topology(&channel, &self.names, self.options.max_attempts).await?;
        channel.confirm_select(ConfirmSelectOptions::default()).await.map_err(unavailable)?;
        Ok((connection, channel))
    }

    async fn publish_waiting(&mut self, inflight: &mut Inflight) {
        let Some((_, channel)) = &self.link else { return };
        let channel = channel.clone();
        while let Some(request) = self.waiting.pop_front() {
            let (exchange, routing_key) = match request.route {
                Route::Work => (&self.names.work, WORK_ROUTING_KEY),
                Route::Retry(tier) => (&self.names.retry, tier),
                Route::Dead => (&self.names.dlx, DEAD_ROUTING_KEY),
            };
            let properties = BasicProperties::default()
                .with_delivery_mode(2) // persistent: survives a broker restart
                .with_content_type("application/json".into())
                .with_headers(request.headers.clone());
            let published = channel
                .basic_publish(
                    exchange.as_str().into(),
                    routing_key.into(),
                    BasicPublishOptions { mandatory: true, ..Default::default() },
                    &request.payload,
                    properties,
                )
                .await;
            match published {
                Ok(confirm) => {
                    let deadline = request.deadline;
                    inflight.push(Box::pin(async move {
                        let outcome = tokio::time::timeout_at(deadline, confirm).await;
                        (request, outcome)
                    }));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "publish failed, reconnecting");
                    self.link = None;
                    self.waiting.push_front(request);
                    return;
                }
            }
        }
    }

    async fn depth(&mut self) -> Result<QueueDepth, QueueError> {
        let names = self.names.clone();
        let channel = self.ensure_link().await?.clone();
        let count = |queue: String| {
            let channel = channel.clone();
            async move {
                channel
                    .queue_declare(
                        queue.as_str().into(),
                        QueueDeclareOptions { passive: true, ..Default::default() },
                        FieldTable::default(),
                    )
                    .await
                    .map(|q| u64::from(q.message_count()))
                    .map_err(unavailable)
            }
        };
        let ready = count(names.builds.clone()).await?;
        let dead = count(names.dead.clone()).await?;
        let mut delayed = 0;
        for (tier, _) in RETRY_TIERS {
            delayed += count(names.retry_queue(tier)).await?;
        }
        Ok(QueueDepth { ready, in_flight: delayed, dead })
    }
}

#[async_trait]
impl Queue for RabbitMqQueue {
    fn kind(&self) -> &'static str {
        "rabbitmq"
    }

    #[tracing::instrument(name = "queue.publish", skip_all, fields(queue = "rabbitmq", dedupe_key = %message.dedupe_key))]
    async fn publish(&self, message: &QueueMessage) -> Result<(), QueueError> {
        self.send(Route::Work, message.to_bytes(), FieldTable::default()).await
    }

    async fn receive(&self) -> Result<Delivery, QueueError> {
        let mut guard = self.consumer.lock().await;
        loop {
            if guard.is_none() {
                *guard = Some(self.connect_consumer().await?);
                tracing::info!("consuming from RabbitMQ");
            }
            let state = guard.as_mut().expect("set above");
            let delivery = match state.consumer.next().await {
                Some(Ok(delivery)) => delivery,
                Some(Err(e)) => {
                    *guard = None;
                    return Err(unavailable(e));
                }
                None => {
                    *guard = None;
                    return Err(QueueError::Unavailable("RabbitMQ consumer was cancelled".into()));
                }
            };
            let headers = delivery.properties.headers().clone().unwrap_or_default();
            let retries = header_u32(&headers, ATTEMPT_HEADER);
            // Quorum queues count redeliveries (a worker died holding it) in x-delivery-count.
            let redeliveries = header_u32(&headers, "x-delivery-count");
            let attempt = retries + redeliveries + 1;
            let settle = Box::new(RabbitSettle {
                queue: RabbitRef { commands: self.commands.clone(), options: self.options.clone() },
                acker: delivery.acker.clone(),
                payload: delivery.data.clone(),
                retries,
            });
            match QueueMessage::from_bytes(&delivery.data) {
                Ok(message) => {
                    return Ok(Delivery::new(message, attempt, self.options.max_attempts, settle));
                }
                Err(e) => {
                    tracing::error!(error = %e, "undecodable message, dead-lettering");
                    settle.dead_letter(&e.to_string()).await?;
                }
            }
        }
    }

    async fn depth(&self) -> Result<QueueDepth, QueueError> {
        self.ask(Command::Depth).await
    }

    async fn ping(&self) -> Result<(), QueueError> {
        self.ask(Command::Ping).await
    }
}

fn header_u32(headers: &FieldTable, name: &str) -> u32 {
    match headers.inner().get(name) {
        Some(AMQPValue::LongLongInt(n)) => u32::try_from(*n).unwrap_or(u32::MAX),
        Some(AMQPValue::LongInt(n)) => u32::try_from(*n).unwrap_or(u32::MAX),
        Some(AMQPValue::LongUInt(n)) => *n,
        Some(AMQPValue::ShortInt(n)) => u32::try_from(*n).unwrap_or(0),
        _ => 0,
    }
}

/// What a delivery needs to publish its retry or dead letter.
struct RabbitRef {
    commands: mpsc::Sender<Command>,
    options: RabbitMqOptions,
}

struct RabbitSettle {
    queue: RabbitRef,
    acker: lapin::Acker,
    payload: Vec<u8>,
    retries: u32,
}

impl RabbitSettle {
    async fn republish(&self, route: Route, headers: FieldTable) -> Result<(), QueueError> {
        let (reply, answer) = oneshot::channel();
        let deadline = Instant::now() + self.queue.options.publish_timeout;
        let request =
            PublishRequest { route, payload: self.payload.clone(), headers, deadline, reply };
        self.queue
            .commands
            .try_send(Command::Publish(request))
            .map_err(|_| QueueError::Unavailable("publish backlog is full".into()))?;
        match tokio::time::timeout_at(deadline + Duration::from_secs(1), answer).await {
            Ok(Ok(result)) => result,
            _ => Err(QueueError::Unavailable("publisher stopped".into())),
        }
    }

    /// Moves the message: publish the copy first, ack the original only once the copy is
    /// confirmed. If that fails, hand the original back to the broker.
    async fn move_to(self, route: Route, headers: FieldTable) -> Result<(), QueueError> {
        if let Err(e) = self.republish(route, headers).await {
            let _ = self.acker.nack(BasicNackOptions { requeue: true, ..Default::default() }).await;
            return Err(e);
        }
        self.acker.ack(BasicAckOptions::default()).await.map(|_| ()).map_err(unavailable)
    }
}

#[async_trait]
impl Settle for RabbitSettle {
    async fn ack(self: Box<Self>) -> Result<(), QueueError> {
        self.acker.ack(BasicAckOptions::default()).await.map(|_| ()).map_err(unavailable)
    }

    async fn retry(self: Box<Self>, delay: Duration, reason: &str) -> Result<(), QueueError> {
        let tier = RETRY_TIERS
            .iter()
            .find(|(_, d)| *d >= delay)
            .unwrap_or(&RETRY_TIERS[RETRY_TIERS.len() - 1])
            .0;
        let headers = table(&[
            (ATTEMPT_HEADER, AMQPValue::LongLongInt(i64::from(self.retries) + 1)),
            (REASON_HEADER, text(reason)),
        ]);
        self.move_to(Route::Retry(tier), headers).await
    }

    async fn dead_letter(self: Box<Self>, reason: &str) -> Result<(), QueueError> {
        let headers = table(&[
            (ATTEMPT_HEADER, AMQPValue::LongLongInt(i64::from(self.retries))),
            (REASON_HEADER, text(reason)),
        ]);
        self.move_to(Route::Dead, headers).await
    }
}
