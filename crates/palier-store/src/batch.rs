//! What both backends do around their inserts: offer each id of a batch once, then
//! answer every event of the batch from what was inserted and what was already there.

use std::collections::HashMap;

use crate::{AppendOutcome, NewEvent, StoreError};

pub(crate) struct Batch<'a> {
    events: &'a [NewEvent],
    /// Index in `events` of the first event with each id.
    first: HashMap<&'a str, usize>,
    /// The first event with each id, in batch order: the ones to insert. A later event
    /// with the same id is answered like an event stored before.
    pub(crate) offered: Vec<&'a NewEvent>,
}

/// Seqs of the events inserted now, by id.
pub(crate) type Appended = HashMap<String, i64>;
/// Seqs and body hashes of the events that were already stored, by id.
pub(crate) type Existing = HashMap<String, (i64, [u8; 32])>;

impl<'a> Batch<'a> {
    pub(crate) fn new(events: &'a [NewEvent]) -> Batch<'a> {
        let mut first = HashMap::with_capacity(events.len());
        let mut offered = Vec::with_capacity(events.len());
        for (i, event) in events.iter().enumerate() {
            first.entry(event.id.as_str()).or_insert_with(|| {
                offered.push(event);
                i
            });
        }
        Batch { events, first, offered }
    }

    /// The ids offered that were not inserted: stored already.
    pub(crate) fn not_inserted(&self, appended: &Appended) -> Vec<&'a str> {
        self.offered.iter().map(|e| e.id.as_str()).filter(|id| !appended.contains_key(*id)).collect()
    }

    /// One answer per event of the batch, in order.
    pub(crate) fn outcomes(
        &self,
        backend: &'static str,
        appended: &Appended,
        existing: &Existing,
    ) -> Result<Vec<AppendOutcome>, StoreError> {
        self.events
            .iter()
            .enumerate()
            .map(|(i, event)| {
                let id = event.id.as_str();
                if let Some(&seq) = appended.get(id) {
                    return Ok(match self.first.get(id) {
                        // A repeat of an id first seen, and inserted, earlier in this batch.
                        Some(&f) if f != i => AppendOutcome::Existing { seq, body_sha256: self.events[f].body_sha256 },
                        _ => AppendOutcome::Appended { seq },
                    });
                }
                match existing.get(id) {
                    Some(&(seq, body_sha256)) => Ok(AppendOutcome::Existing { seq, body_sha256 }),
                    None => Err(StoreError::Corrupt {
                        backend,
                        what: format!("event {id:?} was neither inserted nor found"),
                    }),
                }
            })
            .collect()
    }
}
