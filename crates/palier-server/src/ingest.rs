//! Ingestion: one writer task decides every event in arrival order and commits the
//! accepted ones in one transaction per batch (group commit). A request is answered
//! only after its events are durably committed.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use palier_core::event::{Event, Rejection};
use palier_store::{NewAudit, NewEvent, Store};
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot};

use crate::live::{Decision, Live};
use crate::metrics::Metrics;
use crate::privacy::{EraseReport, EraseRequest};

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
    /// The audit entry of the operator action this event is (committed with it).
    pub audit: Option<NewAudit>,
}

/// The canonical form of a JSON text and its SHA-256.
pub fn body_hash(text: &str) -> [u8; 32] {
    let canonical = serde_json::from_str::<serde_json::Value>(text).map(|v| v.to_string()).unwrap_or_default();
    Sha256::digest(canonical.as_bytes()).into()
}

enum Job {
    Events {
        events: Vec<Prepared>,
        reply: oneshot::Sender<Result<Vec<Decision>, String>>,
    },
    /// An erasure must see no event of its member decided meanwhile: the writer runs
    /// it between batches, with the store and the live state to itself.
    Erase {
        request: EraseRequest,
        reply: oneshot::Sender<Result<EraseReport, String>>,
    },
}

impl Job {
    fn size(&self) -> usize {
        match self {
            Job::Events { events, .. } => events.len(),
            Job::Erase { .. } => 1,
        }
    }
}

/// The handle requests use to reach the writer.
#[derive(Clone)]
pub struct Ingest {
    sender: mpsc::Sender<Job>,
    pub queued: Arc<AtomicU64>,
    /// Committed events, for the notification scanner.
    pub changes: Arc<crate::outbox::Changes>,
}

/// Most events committed in one transaction.
const MAX_BATCH_EVENTS: usize = 8192;

impl Ingest {
    /// Starts the writer. `next_seq` numbers arrivals after those already stored.
    pub fn start(live: Arc<Live>, store: Store, metrics: Arc<Metrics>, next_seq: u64) -> Ingest {
        let (sender, receiver) = mpsc::channel::<Job>(4096);
        let queued = Arc::new(AtomicU64::new(0));
        let changes = Arc::new(crate::outbox::Changes::default());
        tokio::spawn(writer(live, store, metrics, receiver, next_seq, queued.clone(), changes.clone()));
        Ingest { sender, queued, changes }
    }

    /// Decides and durably stores events; answers once they are committed.
    pub async fn submit(&self, events: Vec<Prepared>) -> Result<Vec<Decision>, String> {
        let (reply, answer) = oneshot::channel();
        self.queued.fetch_add(events.len() as u64, Ordering::Relaxed);
        self.sender
            .send(Job::Events { events, reply })
            .await
            .map_err(|_| "the ingest writer has stopped".to_string())?;
        answer.await.map_err(|_| "the ingest writer has stopped".to_string())?
    }

    /// Erases a member's personal data (see `privacy::erase`), serialized with every
    /// event decision.
    pub async fn erase(&self, request: EraseRequest) -> Result<EraseReport, String> {
        let (reply, answer) = oneshot::channel();
        self.queued.fetch_add(1, Ordering::Relaxed);
        self.sender
            .send(Job::Erase { request, reply })
            .await
            .map_err(|_| "the ingest writer has stopped".to_string())?;
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
    changes: Arc<crate::outbox::Changes>,
) {
    let mut pending: Option<Job> = None;
    loop {
        let first = match pending.take() {
            Some(job) => job,
            None => match receiver.recv().await {
                Some(job) => job,
                None => return,
            },
        };
        if let Job::Erase { request, reply } = first {
            let report = crate::privacy::erase(&live, &store, &mut next_seq, request).await;
            queued.fetch_sub(1, Ordering::Relaxed);
            let failed = report.as_ref().err().cloned();
            let _ = reply.send(report);
            if let Some(error) = failed
                && error.starts_with(crate::privacy::STORE_FAILED)
            {
                return stop(&metrics, &mut receiver, &error).await;
            }
            continue;
        }
        let mut jobs = vec![first];
        let mut count = jobs[0].size();
        while count < MAX_BATCH_EVENTS {
            match receiver.try_recv() {
                Ok(job @ Job::Erase { .. }) => {
                    pending = Some(job);
                    break;
                }
                Ok(job) => {
                    count += job.size();
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        let mut decisions: Vec<Vec<Decision>> = Vec::with_capacity(jobs.len());
        let mut to_store: Vec<NewEvent> = Vec::new();
        let mut audits: Vec<NewAudit> = Vec::new();
        let mut replies = Vec::with_capacity(jobs.len());
        for job in jobs {
            let Job::Events { events, reply } = job else { continue };
            let mut answers = Vec::with_capacity(events.len());
            for prepared in events {
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
                    audits.extend(prepared.audit);
                }
                answers.push(decision);
            }
            decisions.push(answers);
            replies.push(reply);
        }
        let committed = store.append_with_audit(&to_store, &audits).await;
        queued.fetch_sub(count as u64, Ordering::Relaxed);
        match committed {
            Ok(outcomes) => {
                changes.record(&to_store, &outcomes);
                metrics.record(&decisions);
                for (reply, answers) in replies.into_iter().zip(decisions) {
                    let _ = reply.send(Ok(answers));
                }
            }
            Err(error) => {
                // The live state ran ahead of the store: nothing of this batch is
                // durable. Refuse it all; the service stops taking writes until it
                // is restarted and rebuilds its state from the store.
                for reply in replies {
                    let _ = reply.send(Err(format!("the store refused the commit: {error}")));
                }
                return stop(&metrics, &mut receiver, &error.to_string()).await;
            }
        }
    }
}

/// After a failed commit the live state ran ahead of the store: every later request
/// is refused until a restart rebuilds the state from the store.
async fn stop(metrics: &Metrics, receiver: &mut mpsc::Receiver<Job>, error: &str) {
    tracing::error!(%error, "commit failed; refusing the batch and stopping ingestion");
    metrics.set_broken();
    while let Some(job) = receiver.recv().await {
        let refusal = "ingestion stopped after a failed commit; restart palier".to_string();
        match job {
            Job::Events { reply, .. } => {
                let _ = reply.send(Err(refusal));
            }
            Job::Erase { reply, .. } => {
                let _ = reply.send(Err(refusal));
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
