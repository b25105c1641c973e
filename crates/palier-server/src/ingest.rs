//! Ingestion: one writer task decides every event in arrival order and commits the
//! accepted ones in one transaction per batch (group commit). A request is answered
//! only after its events are durably committed.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use palier_core::event::{Event, Rejection};
use palier_store::{NewEvent, Store};
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot};

use crate::live::{Decision, Live};
use crate::metrics::Metrics;

/// An event checked on its own, ready for the writer.
pub struct Prepared {
    pub program: usize,
    pub event: Event,
    /// The event's JSON as received.
    pub body: String,
    /// SHA-256 of the canonical body (keys sorted, no white space): equal for
    /// bodies that are equal JSON values.
    pub body_sha256: [u8; 32],
    pub received_unix_nanos: i64,
}

/// The canonical form of a JSON text and its SHA-256.
pub fn body_hash(text: &str) -> [u8; 32] {
    let canonical = serde_json::from_str::<serde_json::Value>(text).map(|v| v.to_string()).unwrap_or_default();
    Sha256::digest(canonical.as_bytes()).into()
}

struct Job {
    events: Vec<Prepared>,
    reply: oneshot::Sender<Result<Vec<Decision>, String>>,
}

/// The handle requests use to reach the writer.
#[derive(Clone)]
pub struct Ingest {
    sender: mpsc::Sender<Job>,
    pub queued: Arc<AtomicU64>,
}

/// Most events committed in one transaction.
const MAX_BATCH_EVENTS: usize = 8192;

impl Ingest {
    /// Starts the writer. `next_seq` numbers arrivals after those already stored.
    pub fn start(live: Arc<Live>, store: Store, metrics: Arc<Metrics>, next_seq: u64) -> Ingest {
        let (sender, receiver) = mpsc::channel::<Job>(4096);
        let queued = Arc::new(AtomicU64::new(0));
        tokio::spawn(writer(live, store, metrics, receiver, next_seq, queued.clone()));
        Ingest { sender, queued }
    }

    /// Decides and durably stores events; answers once they are committed.
    pub async fn submit(&self, events: Vec<Prepared>) -> Result<Vec<Decision>, String> {
        let (reply, answer) = oneshot::channel();
        self.queued.fetch_add(events.len() as u64, Ordering::Relaxed);
        self.sender.send(Job { events, reply }).await.map_err(|_| "the ingest writer has stopped".to_string())?;
        answer.await.map_err(|_| "the ingest writer has stopped".to_string())?
    }
}

async fn writer(
    live: Arc<Live>,
    store: Store,
    metrics: Arc<Metrics>,
    mut receiver: mpsc::Receiver<Job>,
    mut next_seq: u64,
    queued: Arc<AtomicU64>,
) {
    while let Some(first) = receiver.recv().await {
        let mut jobs = vec![first];
        let mut count = jobs[0].events.len();
        while count < MAX_BATCH_EVENTS {
            match receiver.try_recv() {
                Ok(job) => {
                    count += job.events.len();
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        let mut decisions: Vec<Vec<Decision>> = Vec::with_capacity(jobs.len());
        let mut to_store: Vec<NewEvent> = Vec::new();
        let mut replies = Vec::with_capacity(jobs.len());
        for job in jobs {
            let mut answers = Vec::with_capacity(job.events.len());
            for prepared in job.events {
                let program = &live.programs[prepared.program];
                let member = match program.member_of(&prepared.event) {
                    Ok(member) => member,
                    Err(rejection) => {
                        answers.push(already_known_or(&live, &prepared, rejection));
                        continue;
                    }
                };
                let stored = NewEvent {
                    id: prepared.event.id.to_string(),
                    program: program.program.id.clone(),
                    member: member.to_string(),
                    order: prepared.event.body.order().map(str::to_string),
                    at_unix_nanos: prepared.event.at.as_nanosecond() as i64,
                    body: prepared.body,
                    body_sha256: prepared.body_sha256,
                    received_unix_nanos: prepared.received_unix_nanos,
                };
                let decision = live.decide(prepared.program, prepared.event, prepared.body_sha256, next_seq);
                if decision == Decision::Accepted {
                    next_seq += 1;
                    to_store.push(stored);
                }
                answers.push(decision);
            }
            decisions.push(answers);
            replies.push(job.reply);
        }
        let committed = if to_store.is_empty() { Ok(Vec::new()) } else { store.append(&to_store).await };
        queued.fetch_sub(count as u64, Ordering::Relaxed);
        match committed {
            Ok(_) => {
                metrics.record(&decisions);
                for (reply, answers) in replies.into_iter().zip(decisions) {
                    let _ = reply.send(Ok(answers));
                }
            }
            Err(error) => {
                // The live state ran ahead of the store: nothing of this batch is
                // durable. Refuse it all; the service stops taking writes until it
                // is restarted and rebuilds its state from the store.
                tracing::error!(%error, "commit failed; refusing the batch and stopping ingestion");
                for reply in replies {
                    let _ = reply.send(Err(format!("the store refused the commit: {error}")));
                }
                metrics.set_broken();
                while let Some(job) = receiver.recv().await {
                    let _ = job.reply.send(Err("ingestion stopped after a failed commit; restart palier".into()));
                }
                return;
            }
        }
    }
}

/// An event whose id is already taken is a duplicate (or a conflict) before
/// anything else is said of it.
fn already_known_or(live: &Live, prepared: &Prepared, rejection: Rejection) -> Decision {
    match live.known(&prepared.event.id) {
        Some(hash) if hash == prepared.body_sha256 => Decision::Duplicate,
        Some(_) => Decision::Rejected(Rejection::new(
            palier_core::RejectCode::DuplicateConflict,
            format!("id: {:?} was accepted before with another body", prepared.event.id),
        )),
        None => Decision::Rejected(rejection),
    }
}
