//! The audit trail: every operator action, appended to a hash chain.
//!
//! Entry n stores `prev_hash` (entry n−1's `hash`, zeros for the first) and
//! `hash = SHA-256(prev_hash ‖ seq ‖ at ‖ actor ‖ action ‖ subject ‖ detail)`, each
//! text length-prefixed. Changing, removing or reordering any entry breaks the chain
//! at that entry or the next; [`verify`] names the first broken link.

use sha2::{Digest, Sha256};

/// An audit entry to append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAudit {
    pub at_unix_nanos: i64,
    /// Who: the API key id, or `cli:…` for the command line.
    pub actor: String,
    /// What: `ledger.adjusted`, `member.erased`, `key.created`, …
    pub action: String,
    /// On what: a pseudonymous reference (never personal data).
    pub subject: String,
    /// JSON without personal data.
    pub detail: String,
}

/// A stored audit entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    pub seq: i64,
    pub entry: NewAudit,
    pub prev_hash: [u8; 32],
    pub hash: [u8; 32],
}

/// The `prev_hash` of the first entry.
pub const GENESIS: [u8; 32] = [0; 32];

/// The hash of entry `seq` following `prev`.
pub fn link_hash(prev: &[u8; 32], seq: i64, entry: &NewAudit) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(prev);
    hasher.update(seq.to_be_bytes());
    hasher.update(entry.at_unix_nanos.to_be_bytes());
    for text in [&entry.actor, &entry.action, &entry.subject, &entry.detail] {
        hasher.update((text.len() as u64).to_be_bytes());
        hasher.update(text.as_bytes());
    }
    hasher.finalize().into()
}

/// The first entry where the chain breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokenLink {
    pub seq: i64,
    pub why: String,
}

/// The recorded head of the chain: the last entry's `seq` and `hash`.
pub fn head_bytes(seq: i64, hash: &[u8; 32]) -> Vec<u8> {
    let mut bytes = seq.to_be_bytes().to_vec();
    bytes.extend_from_slice(hash);
    bytes
}

/// Reads [`head_bytes`] back.
pub fn parse_head(bytes: &[u8]) -> Option<(i64, [u8; 32])> {
    let seq = i64::from_be_bytes(bytes.get(..8)?.try_into().ok()?);
    let hash = bytes.get(8..40)?.try_into().ok()?;
    Some((seq, hash))
}

/// Checks a chain against its recorded head: entries removed from its end are a
/// broken link too.
pub fn verify_with_head(records: &[AuditRecord], head: Option<(i64, [u8; 32])>) -> Result<usize, BrokenLink> {
    let count = verify(records)?;
    match (head, records.last()) {
        (None, None) => Ok(count),
        (Some((seq, hash)), Some(last)) if seq == last.seq && hash == last.hash => Ok(count),
        (Some((seq, _)), last) if last.is_none_or(|l| l.seq < seq) => Err(BrokenLink {
            seq: last.map_or(1, |l| l.seq + 1),
            why: format!("the chain ends before its recorded head (entry {seq}): entries were removed"),
        }),
        (_, last) => Err(BrokenLink {
            seq: last.map_or(0, |l| l.seq),
            why: "the last entry is not the recorded head of the chain".into(),
        }),
    }
}

/// Checks a whole chain, in `seq` order. `Ok(n)`: n entries, all linked.
pub fn verify(records: &[AuditRecord]) -> Result<usize, BrokenLink> {
    let mut prev = GENESIS;
    for (index, record) in records.iter().enumerate() {
        let expected_seq = index as i64 + 1;
        if record.seq != expected_seq {
            return Err(BrokenLink {
                seq: record.seq,
                why: format!("entry {expected_seq} is missing (found {} in its place)", record.seq),
            });
        }
        if record.prev_hash != prev {
            return Err(BrokenLink { seq: record.seq, why: "prev_hash is not the previous entry's hash".into() });
        }
        if record.hash != link_hash(&prev, record.seq, &record.entry) {
            return Err(BrokenLink { seq: record.seq, why: "its content does not match its hash".into() });
        }
        prev = record.hash;
    }
    Ok(records.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: i64) -> Vec<AuditRecord> {
        let mut prev = GENESIS;
        (1..=n)
            .map(|seq| {
                let entry = NewAudit {
                    at_unix_nanos: seq * 1000,
                    actor: "admin".into(),
                    action: "ledger.adjusted".into(),
                    subject: format!("s-{seq}"),
                    detail: "{}".into(),
                };
                let hash = link_hash(&prev, seq, &entry);
                let record = AuditRecord { seq, entry, prev_hash: prev, hash };
                prev = hash;
                record
            })
            .collect()
    }

    #[test]
    fn an_untouched_chain_verifies() {
        assert_eq!(verify(&chain(5)), Ok(5));
        assert_eq!(verify(&[]), Ok(0));
    }

    #[test]
    fn removing_the_last_entries_is_found_by_the_head() {
        let records = chain(5);
        let head = Some((5, records[4].hash));
        assert_eq!(verify_with_head(&records, head), Ok(5));
        assert_eq!(verify_with_head(&records[..3], head).map_err(|b| b.seq), Err(4));
        assert_eq!(parse_head(&head_bytes(5, &records[4].hash)), head);
    }

    #[test]
    fn any_change_is_found_at_its_entry() {
        let mut records = chain(5);
        records[2].entry.detail = "{\"amount\":1}".into();
        assert_eq!(verify(&records).map_err(|b| b.seq), Err(3));
        let mut records = chain(5);
        records.remove(1);
        assert_eq!(verify(&records).map_err(|b| b.seq), Err(3));
    }
}
