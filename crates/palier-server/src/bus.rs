//! NATS JetStream (`palier serve --nats URL`, docs/notifications.md):
//!
//! - **out**: each notification is published to `palier.<program>.<kind>`, captured
//!   by the stream `PALIER_NOTIFICATIONS` (created if missing, its subjects extended
//!   to the loaded programs), with the notification id as `Nats-Msg-Id`: JetStream
//!   drops a second publish of the same id within its duplicate window, and the
//!   dispatcher counts a delivery done only once JetStream acknowledged it.
//! - **in**: retailer events published to `palier.events.<program>` (one event JSON
//!   a message; the subject's program is used when the event names none) are
//!   captured by the stream `PALIER_EVENTS` and read by the durable pull consumer
//!   `palier`. A message is acknowledged only after its event is decided and
//!   committed: accepted, a duplicate (redelivery is harmless: ids are idempotent)
//!   or rejected (logged with its code and counted in `palier_bus_events_total`,
//!   never retried). If the store fails, the message is not acknowledged and
//!   JetStream delivers it again.

use std::time::Duration;

use async_nats::jetstream::{self, AckKind, consumer, stream};
use futures_util::{FutureExt, StreamExt};
use palier_store::outbox::Claimed;

use crate::AppState;
use crate::live::Decision;

/// The stream capturing published notifications.
pub const NOTIFICATIONS_STREAM: &str = "PALIER_NOTIFICATIONS";
/// The stream capturing retailer events.
pub const EVENTS_STREAM: &str = "PALIER_EVENTS";
/// The subjects of `PALIER_EVENTS`.
pub const EVENTS_SUBJECTS: &str = "palier.events.>";
/// How long the streams palier creates keep messages.
const KEEP: Duration = Duration::from_secs(7 * 24 * 3600);
/// Events decided together (one group commit).
const BATCH: usize = 256;

/// Where palier meets NATS.
#[derive(Clone, Debug)]
pub struct NatsConfig {
    /// `nats://host:port`
    pub url: String,
    /// The durable consumer of `PALIER_EVENTS` (default `palier`).
    pub consumer: String,
    /// The subjects that consumer reads (default `palier.events.>`).
    pub events_filter: String,
}

impl NatsConfig {
    pub fn new(url: &str) -> NatsConfig {
        NatsConfig { url: url.to_string(), consumer: "palier".into(), events_filter: EVENTS_SUBJECTS.into() }
    }
}

/// The publishing side.
pub(crate) struct Bus {
    jetstream: jetstream::Context,
}

/// The subject a notification is published to.
pub fn subject(program: &str, kind: &str) -> String {
    format!("palier.{program}.{kind}")
}

fn valid_token(token: &str) -> bool {
    !token.is_empty() && !token.contains(['.', '*', '>', ' ', '\t', '\r', '\n'])
}

/// Connects, makes sure both streams and the consumer exist.
pub(crate) async fn connect(config: &NatsConfig, programs: &[String]) -> Result<(Bus, consumer::PullConsumer), String> {
    for program in programs {
        if !valid_token(program) || program == "events" {
            return Err(format!("--nats: program id {program:?} cannot be a NATS subject token"));
        }
    }
    let client = async_nats::ConnectOptions::new()
        .name("palier")
        .connection_timeout(Duration::from_secs(5))
        .connect(config.url.as_str())
        .await
        .map_err(|e| format!("--nats {}: cannot connect: {e}", config.url))?;
    let jetstream = jetstream::new(client);
    let wanted: Vec<String> = programs.iter().map(|p| format!("palier.{p}.*")).collect();
    let mut notifications = jetstream
        .get_or_create_stream(stream::Config {
            name: NOTIFICATIONS_STREAM.into(),
            subjects: wanted.clone(),
            max_age: KEEP,
            ..Default::default()
        })
        .await
        .map_err(|e| format!("--nats: cannot create the stream {NOTIFICATIONS_STREAM}: {e}"))?;
    let mut stream_config =
        notifications.info().await.map_err(|e| format!("--nats: {NOTIFICATIONS_STREAM}: {e}"))?.config.clone();
    let missing: Vec<String> = wanted.into_iter().filter(|s| !stream_config.subjects.contains(s)).collect();
    if !missing.is_empty() {
        stream_config.subjects.extend(missing);
        jetstream
            .update_stream(stream_config)
            .await
            .map_err(|e| format!("--nats: cannot add the programs' subjects to {NOTIFICATIONS_STREAM}: {e}"))?;
    }
    let events = jetstream
        .get_or_create_stream(stream::Config {
            name: EVENTS_STREAM.into(),
            subjects: vec![EVENTS_SUBJECTS.into()],
            max_age: KEEP,
            ..Default::default()
        })
        .await
        .map_err(|e| format!("--nats: cannot create the stream {EVENTS_STREAM}: {e}"))?;
    let consumer = events
        .get_or_create_consumer(
            &config.consumer,
            consumer::pull::Config {
                durable_name: Some(config.consumer.clone()),
                filter_subject: config.events_filter.clone(),
                ack_policy: consumer::AckPolicy::Explicit,
                ack_wait: Duration::from_secs(30),
                ..Default::default()
            },
        )
        .await
        .map_err(|e| format!("--nats: cannot create the consumer {}: {e}", config.consumer))?;
    tracing::info!(url = %config.url, consumer = %config.consumer, "NATS JetStream connected");
    Ok((Bus { jetstream }, consumer))
}

impl Bus {
    /// Publishes a notification and waits for JetStream's acknowledgement.
    pub(crate) async fn publish(&self, delivery: &Claimed) -> Result<(), String> {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", delivery.notification.as_str());
        let ack = self
            .jetstream
            .publish_with_headers(subject(&delivery.program, &delivery.kind), headers, delivery.payload.clone().into())
            .await
            .map_err(|e| format!("NATS publish: {e}"))?;
        ack.await.map_err(|e| format!("NATS publish not acknowledged: {e}"))?;
        Ok(())
    }
}

/// The program a subject `palier.events.<program>[.…]` names, if loaded.
fn subject_program(state: &AppState, subject: &str) -> Option<usize> {
    let mut tokens = subject.split('.');
    match (tokens.next(), tokens.next(), tokens.next()) {
        (Some("palier"), Some("events"), Some(program)) => state.inner.live.program_index(program),
        _ => None,
    }
}

/// Reads retailer events until the process ends.
pub(crate) async fn consume(state: AppState, consumer: consumer::PullConsumer) {
    loop {
        let mut messages = match consumer.stream().max_messages_per_batch(BATCH).messages().await {
            Ok(messages) => messages,
            Err(error) => {
                tracing::error!(%error, "NATS: cannot read the events stream; trying again");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        loop {
            let first = match messages.next().await {
                Some(Ok(message)) => message,
                Some(Err(error)) => {
                    tracing::warn!(%error, "NATS: events stream");
                    continue;
                }
                None => break,
            };
            let mut batch = vec![first];
            while batch.len() < BATCH {
                match messages.next().now_or_never() {
                    Some(Some(Ok(message))) => batch.push(message),
                    _ => break,
                }
            }
            decide(&state, batch).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Decides a batch (one group commit per run of messages naming the same program by
/// subject), then acknowledges each message whose event was decided.
async fn decide(state: &AppState, batch: Vec<jetstream::Message>) {
    let mut start = 0;
    while start < batch.len() {
        let program = subject_program(state, &batch[start].subject);
        let mut end = start + 1;
        while end < batch.len() && subject_program(state, &batch[end].subject) == program {
            end += 1;
        }
        let run = &batch[start..end];
        start = end;
        let texts: Vec<String> = run.iter().map(|m| String::from_utf8_lossy(&m.payload).into_owned()).collect();
        let metrics = &state.inner.metrics;
        match state.submit_texts(texts, program).await {
            Ok(results) => {
                for (message, (id, decision)) in run.iter().zip(results) {
                    let (outcome, code) = match &decision {
                        Decision::Accepted => ("accepted", ""),
                        Decision::Duplicate => ("duplicate", ""),
                        Decision::Rejected(rejection) => {
                            tracing::warn!(
                                subject = %message.subject, id = id.as_deref().unwrap_or("?"),
                                code = rejection.code.as_str(), reason = %rejection.message,
                                "NATS: event rejected (acknowledged, not retried)"
                            );
                            ("rejected", rejection.code.as_str())
                        }
                    };
                    metrics.bus_events.with_label_values(&[outcome, code]).inc();
                    if let Err(error) = message.ack().await {
                        tracing::warn!(%error, "NATS: cannot acknowledge a message (it will come again)");
                    }
                }
            }
            Err(problem) => {
                tracing::error!(detail = %problem.detail, "NATS: events not committed; they will come again");
                for message in run {
                    let _ = message.ack_with(AckKind::Nak(Some(Duration::from_secs(5)))).await;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}
