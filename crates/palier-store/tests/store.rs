//! The store against real databases: every test runs twice, on a SQLite file in a fresh
//! temporary directory (`sqlite::…`) and on a fresh PostgreSQL database (`postgres::…`).
//!
//! PostgreSQL: the server at `PALIER_TEST_POSTGRES` (default
//! `postgres://postgres@127.0.0.1:5432`, trust auth). Each test creates its own database
//! `palier_test_<pid>_<n>` through the `postgres` maintenance database and drops it when
//! it ends, pass or fail. An unreachable server fails the PostgreSQL tests, loudly.

use std::sync::atomic::{AtomicUsize, Ordering};

use palier_store::{AppendOutcome, KeyRecord, NewEvent, NewKey, Store, StoreError, StoredEvent};
use sqlx::Connection;

// ---------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------

const DEFAULT_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432";

fn postgres_server() -> String {
    std::env::var("PALIER_TEST_POSTGRES").unwrap_or_else(|_| DEFAULT_POSTGRES.to_owned())
}

/// A fresh, empty database for one test, removed when dropped.
struct Db {
    location: String,
    kind: &'static str,
    _dir: Option<tempfile::TempDir>,
    postgres_name: Option<String>,
}

impl Db {
    fn sqlite() -> Db {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let location = dir.path().join("palier.db").to_str().expect("a UTF-8 temp path").to_owned();
        Db { location, kind: "sqlite", _dir: Some(dir), postgres_name: None }
    }

    async fn postgres() -> Db {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!("palier_test_{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let server = postgres_server();
        let mut admin = sqlx::PgConnection::connect(&format!("{server}/postgres")).await.unwrap_or_else(|e| {
            panic!(
                "PostgreSQL is not reachable at {server}/postgres: {e}\n\
                 these tests need a running server (trust auth); set PALIER_TEST_POSTGRES to its URL"
            )
        });
        sqlx::raw_sql(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .unwrap_or_else(|e| panic!("creating test database {name}: {e}"));
        admin.close().await.ok();
        Db { location: format!("{server}/{name}"), kind: "postgres", _dir: None, postgres_name: Some(name) }
    }

    async fn open(&self) -> Store {
        let store = Store::open(&self.location).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(store.kind(), self.kind);
        store
    }

    /// Runs SQL on the database directly, beside the store.
    async fn raw(&self, sql: &str) {
        if self.kind == "sqlite" {
            let options = sqlx::sqlite::SqliteConnectOptions::new().filename(&self.location);
            let mut conn = sqlx::SqliteConnection::connect_with(&options).await.expect("raw SQLite connection");
            sqlx::raw_sql(sql).execute(&mut conn).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
            conn.close().await.ok();
        } else {
            let mut conn = sqlx::PgConnection::connect(&self.location).await.expect("raw PostgreSQL connection");
            sqlx::raw_sql(sql).execute(&mut conn).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
            conn.close().await.ok();
        }
    }

    /// The versions recorded as applied in sqlx's `_sqlx_migrations`.
    async fn applied_migrations(&self) -> Vec<i64> {
        let sql = "SELECT version FROM _sqlx_migrations WHERE success ORDER BY version";
        if self.kind == "sqlite" {
            let options = sqlx::sqlite::SqliteConnectOptions::new().filename(&self.location);
            let mut conn = sqlx::SqliteConnection::connect_with(&options).await.expect("raw SQLite connection");
            sqlx::query_scalar(sql).fetch_all(&mut conn).await.expect("reading _sqlx_migrations")
        } else {
            let mut conn = sqlx::PgConnection::connect(&self.location).await.expect("raw PostgreSQL connection");
            sqlx::query_scalar(sql).fetch_all(&mut conn).await.expect("reading _sqlx_migrations")
        }
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        let Some(name) = self.postgres_name.take() else { return };
        // Drop runs inside the test's runtime, which cannot be blocked on: use a thread
        // with a runtime of its own.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(async {
                let mut admin = sqlx::PgConnection::connect(&format!("{}/postgres", postgres_server())).await?;
                sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut admin).await?;
                admin.close().await?;
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("warning: could not drop a test database: {dropped:?}");
        }
    }
}

/// Each test body runs once per backend, as `sqlite::NAME` and `postgres::NAME`.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = super::Db::sqlite();
                    super::$name(&db).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = super::Db::postgres().await;
                    super::$name(&db).await;
                }
            )*
        }
    };
}

on_both_backends!(
    open_runs_migrations_and_reopening_is_fine,
    append_then_read_back_every_field,
    duplicates_answer_existing_with_the_stored_hash,
    a_large_batch_with_repeats_answers_every_event,
    a_failing_batch_writes_nothing,
    concurrent_appends_of_one_id_append_it_once,
    concurrent_overlapping_batches_append_each_id_once,
    for_each_event_streams_in_seq_order_across_pages,
    member_events_filters_by_program_and_member,
    keys_insert_list_revoke,
    data_survives_closing_and_reopening,
    the_outbox_records_once_leases_claims_and_replays,
);

fn sha(n: u64) -> [u8; 32] {
    let mut hash = [0xA5; 32];
    hash[..8].copy_from_slice(&n.to_be_bytes());
    hash
}

fn event(id: &str, member: &str, n: u64) -> NewEvent {
    NewEvent {
        id: id.to_owned(),
        program: "net-a-porter".to_owned(),
        member: member.to_owned(),
        order: None,
        at_unix_nanos: 1_767_225_600_000_000_000 + i64::try_from(n).expect("small n") * 1_000,
        body: format!(r#"{{"id":"{id}","type":"member.registered","member":"{member}","n":{n}}}"#),
        body_sha256: sha(n),
        received_unix_nanos: 1_780_000_000_000_000_000 + i64::try_from(n).expect("small n"),
    }
}

fn stored(seq: i64, e: &NewEvent) -> StoredEvent {
    StoredEvent {
        seq,
        id: e.id.clone(),
        program: e.program.clone(),
        member: e.member.clone(),
        order: e.order.clone(),
        at_unix_nanos: e.at_unix_nanos,
        body: e.body.clone(),
        body_sha256: e.body_sha256,
        received_unix_nanos: e.received_unix_nanos,
    }
}

fn appended(outcome: &AppendOutcome) -> i64 {
    match *outcome {
        AppendOutcome::Appended { seq } => seq,
        other => panic!("expected Appended, got {other:?}"),
    }
}

async fn all_events(store: &Store, page: usize) -> Vec<StoredEvent> {
    let mut events = Vec::new();
    let count = store.for_each_event(page, |e| events.push(e)).await.expect("for_each_event");
    assert_eq!(count, events.len() as u64);
    events
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

async fn open_runs_migrations_and_reopening_is_fine(db: &Db) {
    let store = db.open().await;
    assert_eq!(db.applied_migrations().await, vec![1, 2, 3]);
    assert_eq!(store.event_count().await.expect("count"), 0);
    assert!(store.keys().await.expect("keys").is_empty());
    store.ping().await.expect("ping");

    // A second store on the same database while the first is open, then after it closes:
    // the migration is recorded once and not run again.
    let again = db.open().await;
    again.ping().await.expect("ping");
    again.close().await;
    store.close().await;
    let third = db.open().await;
    assert_eq!(db.applied_migrations().await, vec![1, 2, 3]);
    assert_eq!(third.event_count().await.expect("count"), 0);
    third.close().await;

    if db.kind == "sqlite" {
        let options = sqlx::sqlite::SqliteConnectOptions::new().filename(&db.location);
        let mut conn = sqlx::SqliteConnection::connect_with(&options).await.expect("raw connection");
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode").fetch_one(&mut conn).await.expect("pragma");
        assert_eq!(mode, "wal");
        conn.close().await.ok();
    }
}

async fn append_then_read_back_every_field(db: &Db) {
    let store = db.open().await;
    assert_eq!(store.append(&[]).await.expect("empty batch"), vec![]);

    // Ids out of their sort order: seq follows the batch, not the ids.
    let mut with_order = event("e-1", "m-1", 2);
    with_order.order = Some("o-1".to_owned());
    with_order.body = r#"{"id":"e-1","type":"order.placed","note":"é \"quoted\" ☃","x":[1, 2]}"#.to_owned();
    let batch = vec![event("e-3", "m-1", 1), with_order, event("e-2", "m-2", 3)];
    let outcomes = store.append(&batch).await.expect("append");
    let seqs: Vec<i64> = outcomes.iter().map(appended).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "seqs follow batch order: {seqs:?}");

    for (e, &seq) in batch.iter().zip(&seqs) {
        assert_eq!(store.event(&e.id).await.expect("event"), Some(stored(seq, e)));
    }
    assert_eq!(store.event("nope").await.expect("event"), None);
    assert_eq!(store.event_count().await.expect("count"), 3);
    let expected: Vec<StoredEvent> = batch.iter().zip(&seqs).map(|(e, &seq)| stored(seq, e)).collect();
    assert_eq!(all_events(&store, 100).await, expected);

    // A later batch comes after.
    let later = store.append(&[event("e-4", "m-1", 4)]).await.expect("append");
    assert!(appended(&later[0]) > seqs[2]);
    store.close().await;
}

async fn duplicates_answer_existing_with_the_stored_hash(db: &Db) {
    let store = db.open().await;
    let a = event("a", "m-1", 1);
    let seq_a = appended(&store.append(std::slice::from_ref(&a)).await.expect("append")[0]);

    let b = event("b", "m-1", 2);
    let mut a_again = event("a", "m-9", 100); // same id, another body
    a_again.body = "{}".to_owned();
    let mut b_again = event("b", "m-1", 200); // repeats b inside the batch, another body
    b_again.body = "{}".to_owned();
    let c = event("c", "m-1", 3);
    let a_same = a.clone(); // the very same event again
    let outcomes = store.append(&[b.clone(), a_again, b_again, c.clone(), a_same]).await.expect("append");

    let seq_b = appended(&outcomes[0]);
    assert_eq!(outcomes[1], AppendOutcome::Existing { seq: seq_a, body_sha256: a.body_sha256 });
    assert_eq!(outcomes[2], AppendOutcome::Existing { seq: seq_b, body_sha256: b.body_sha256 });
    let seq_c = appended(&outcomes[3]);
    assert!(seq_a < seq_b && seq_b < seq_c);
    assert_eq!(outcomes[4], AppendOutcome::Existing { seq: seq_a, body_sha256: a.body_sha256 });
    assert_eq!(outcomes.iter().map(AppendOutcome::seq).collect::<Vec<_>>(), [seq_b, seq_a, seq_b, seq_c, seq_a]);

    // Nothing was written twice, and the first bodies stand.
    assert_eq!(store.event_count().await.expect("count"), 3);
    assert_eq!(all_events(&store, 10).await, vec![stored(seq_a, &a), stored(seq_b, &b), stored(seq_c, &c)]);
    store.close().await;
}

async fn a_large_batch_with_repeats_answers_every_event(db: &Db) {
    // Larger than one statement carries (SQLite splits at 512 rows), with ids stored
    // before and ids repeated later in the batch, across statements.
    let store = db.open().await;
    let before: Vec<NewEvent> = (0..50).map(|n| event(&format!("big-{n:04}"), "m-1", n)).collect();
    let before_seqs: Vec<i64> = store.append(&before).await.expect("append").iter().map(appended).collect();

    let mut batch: Vec<NewEvent> = (0..1000).map(|n| event(&format!("big-{n:04}"), "m-2", 10_000 + n)).collect();
    batch.extend((900..1000).map(|n| event(&format!("big-{n:04}"), "m-3", 20_000 + n)));
    batch.reverse(); // batch order unlike id order; the repeats now come first
    let outcomes = store.append(&batch).await.expect("append");
    assert_eq!(outcomes.len(), 1100);

    let mut last_appended = *before_seqs.last().expect("stored");
    let mut seq_of = std::collections::HashMap::new();
    for (e, o) in batch.iter().zip(&outcomes) {
        let n: usize = e.id["big-".len()..].parse().expect("number");
        match *o {
            AppendOutcome::Appended { seq } => {
                assert!(n >= 50, "{} was stored before", e.id);
                assert!(seq > last_appended, "seq follows batch order");
                last_appended = seq;
                assert!(seq_of.insert(e.id.clone(), (seq, e.body_sha256)).is_none(), "{} appended twice", e.id);
            }
            AppendOutcome::Existing { seq, body_sha256 } if n < 50 => {
                assert_eq!((seq, body_sha256), (before_seqs[n], before[n].body_sha256), "{}", e.id);
            }
            AppendOutcome::Existing { seq, body_sha256 } => {
                assert_eq!(Some(&(seq, body_sha256)), seq_of.get(&e.id), "{} repeats its first", e.id);
            }
        }
    }
    assert_eq!(seq_of.len(), 950);
    assert_eq!(store.event_count().await.expect("count"), 1000);
    store.close().await;
}

async fn a_failing_batch_writes_nothing(db: &Db) {
    let store = db.open().await;
    let first = event("before", "m-1", 1);
    store.append(std::slice::from_ref(&first)).await.expect("append");

    // A trigger refuses one id, so the batch fails at its third event, after two inserts.
    if db.kind == "sqlite" {
        db.raw(
            "CREATE TRIGGER refuse_poison BEFORE INSERT ON events WHEN NEW.id = 'poison' \
             BEGIN SELECT RAISE(ABORT, 'poison refused'); END;",
        )
        .await;
    } else {
        db.raw(
            "CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$ \
             BEGIN IF NEW.id = 'poison' THEN RAISE EXCEPTION 'poison refused'; END IF; RETURN NEW; END $$; \
             CREATE TRIGGER refuse_poison BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION refuse_poison();",
        )
        .await;
    }
    let batch = [event("x-1", "m-1", 2), event("x-2", "m-2", 3), event("poison", "m-1", 4), event("x-3", "m-1", 5)];
    let err = store.append(&batch).await.expect_err("the poisoned batch fails");
    assert!(matches!(err, StoreError::Query { .. } | StoreError::Write { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("append") && message.contains(db.kind), "{message}");

    assert_eq!(store.event_count().await.expect("count"), 1);
    for id in ["x-1", "x-2", "x-3"] {
        assert_eq!(store.event(id).await.expect("event"), None, "{id} was rolled back");
    }
    // The store is still usable, and the ids of the failed batch are free.
    let outcomes = store.append(&batch[..2]).await.expect("append");
    assert!(matches!(outcomes[..], [AppendOutcome::Appended { .. }, AppendOutcome::Appended { .. }]));
    store.close().await;
}

async fn concurrent_appends_of_one_id_append_it_once(db: &Db) {
    let store = db.open().await;
    let tasks: Vec<_> = (0..64_u64)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move {
                let e = event("contended", "m-1", n);
                (n, store.append(&[e]).await.expect("append")[0])
            })
        })
        .collect();
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.expect("task"));
    }

    let winners: Vec<(u64, i64)> = results
        .iter()
        .filter_map(|&(n, o)| match o {
            AppendOutcome::Appended { seq } => Some((n, seq)),
            AppendOutcome::Existing { .. } => None,
        })
        .collect();
    assert_eq!(winners.len(), 1, "exactly one append wins: {results:?}");
    let (winner, seq) = winners[0];
    for &(n, outcome) in &results {
        if n != winner {
            assert_eq!(outcome, AppendOutcome::Existing { seq, body_sha256: sha(winner) }, "task {n}");
        }
    }
    assert_eq!(store.event_count().await.expect("count"), 1);
    assert_eq!(store.event("contended").await.expect("event").expect("stored").body_sha256, sha(winner));
    store.close().await;
}

async fn concurrent_overlapping_batches_append_each_id_once(db: &Db) {
    // Batches holding the same ids in different orders (on PostgreSQL they can deadlock on
    // each other's uncommitted rows; the store must still answer every one correctly).
    let store = db.open().await;
    let ids: Vec<String> = (0..2000).map(|i| format!("shared-{i}")).collect();
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(16));
    let tasks: Vec<_> = (0..16_usize)
        .map(|t| {
            let store = store.clone();
            let start = start.clone();
            let mut order: Vec<usize> = (0..ids.len()).collect();
            order.rotate_left(t % ids.len());
            if t % 2 == 1 {
                order.reverse();
            }
            let batch: Vec<NewEvent> = order.iter().map(|&i| event(&ids[i], "m-1", i as u64)).collect();
            tokio::spawn(async move {
                start.wait().await;
                let outcomes = store.append(&batch).await.expect("append");
                (batch, outcomes)
            })
        })
        .collect();
    let mut appended_per_id = std::collections::BTreeMap::<String, Vec<i64>>::new();
    let mut seen_seq = std::collections::BTreeMap::<String, i64>::new();
    for task in tasks {
        let (batch, outcomes) = task.await.expect("task");
        assert_eq!(outcomes.len(), batch.len());
        for (e, o) in batch.iter().zip(&outcomes) {
            if let AppendOutcome::Appended { seq } = o {
                appended_per_id.entry(e.id.clone()).or_default().push(*seq);
            }
            let first = *seen_seq.entry(e.id.clone()).or_insert(o.seq());
            assert_eq!(first, o.seq(), "every answer for {} names one seq", e.id);
        }
    }
    assert_eq!(appended_per_id.len(), ids.len());
    assert!(appended_per_id.values().all(|seqs| seqs.len() == 1), "{appended_per_id:?}");
    assert_eq!(store.event_count().await.expect("count"), ids.len() as u64);
    store.close().await;
}

async fn for_each_event_streams_in_seq_order_across_pages(db: &Db) {
    let store = db.open().await;
    assert_eq!(store.for_each_event(10, |_| panic!("the log is empty")).await.expect("empty"), 0);

    let mut written = Vec::new();
    let mut n = 0_u64;
    for size in [1_usize, 50, 3, 97, 99] {
        let batch: Vec<NewEvent> = (0..size)
            .map(|_| {
                n += 1;
                event(&format!("e-{n:03}"), &format!("m-{}", n % 7), n)
            })
            .collect();
        let outcomes = store.append(&batch).await.expect("append");
        written.extend(batch.iter().zip(&outcomes).map(|(e, o)| stored(appended(o), e)));
    }
    assert_eq!(written.len(), 250);

    for page in [0, 1, 7, 50, 250, 1000] {
        let events = all_events(&store, page).await;
        assert!(events.windows(2).all(|w| w[0].seq < w[1].seq), "page {page}: seq order");
        assert_eq!(events, written, "page {page}");
    }
    store.close().await;
}

async fn member_events_filters_by_program_and_member(db: &Db) {
    let store = db.open().await;
    let mut other_program = event("p2-m1", "m-1", 3);
    other_program.program = "mr-porter".to_owned();
    let batch = vec![
        event("a", "m-1", 1),
        event("b", "m-2", 2),
        other_program.clone(),
        event("c", "m-1", 4),
        event("d", "m-10", 5),
    ];
    let seqs: Vec<i64> = store.append(&batch).await.expect("append").iter().map(appended).collect();
    let late = event("e", "m-1", 6);
    let seq_late = appended(&store.append(std::slice::from_ref(&late)).await.expect("append")[0]);

    assert_eq!(
        store.member_events("net-a-porter", "m-1").await.expect("member"),
        vec![stored(seqs[0], &batch[0]), stored(seqs[3], &batch[3]), stored(seq_late, &late)]
    );
    assert_eq!(store.member_events("mr-porter", "m-1").await.expect("member"), vec![stored(seqs[2], &other_program)]);
    assert_eq!(store.member_events("net-a-porter", "m-2").await.expect("member"), vec![stored(seqs[1], &batch[1])]);
    assert!(store.member_events("net-a-porter", "m-3").await.expect("member").is_empty());
    assert!(store.member_events("perfone", "m-1").await.expect("member").is_empty());
    store.close().await;
}

async fn keys_insert_list_revoke(db: &Db) {
    let store = db.open().await;
    let key = |id: &str, n: u64, scopes: &[&str], created: i64| NewKey {
        id: id.to_owned(),
        name: format!("key {id}"),
        secret_sha256: sha(n),
        scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
        created_unix_seconds: created,
    };
    let admin = key("k-admin", 1, &["admin", "events:write", "members:read"], 1_000);
    let reader = key("k-reader", 2, &["members:read"], 3_000);
    let none = key("k-none", 3, &[], 2_000);
    for k in [&admin, &reader, &none] {
        store.insert_key(k).await.expect("insert_key");
    }
    let record = |k: &NewKey, revoked: Option<i64>| KeyRecord {
        id: k.id.clone(),
        name: k.name.clone(),
        secret_sha256: k.secret_sha256,
        scopes: k.scopes.clone(),
        created_unix_seconds: k.created_unix_seconds,
        revoked_unix_seconds: revoked,
    };
    assert_eq!(
        store.keys().await.expect("keys"),
        vec![record(&reader, None), record(&none, None), record(&admin, None)],
        "newest first"
    );

    let same_id = key("k-admin", 9, &["x"], 5_000);
    assert!(matches!(store.insert_key(&same_id).await, Err(StoreError::KeyExists { .. })));
    let same_secret = key("k-other", 1, &["x"], 5_000);
    assert!(matches!(store.insert_key(&same_secret).await, Err(StoreError::KeyExists { .. })));
    let comma = key("k-comma", 10, &["a,b"], 5_000);
    assert!(matches!(store.insert_key(&comma).await, Err(StoreError::InvalidKey { .. })));
    let empty = key("k-empty", 11, &[""], 5_000);
    assert!(matches!(store.insert_key(&empty).await, Err(StoreError::InvalidKey { .. })));
    assert_eq!(store.keys().await.expect("keys").len(), 3);

    assert!(store.revoke_key("k-reader", 4_000).await.expect("revoke"));
    assert!(!store.revoke_key("k-reader", 5_000).await.expect("revoke twice"));
    assert!(!store.revoke_key("k-unknown", 5_000).await.expect("revoke unknown"));
    assert_eq!(
        store.keys().await.expect("keys"),
        vec![record(&reader, Some(4_000)), record(&none, None), record(&admin, None)],
        "the first revocation time stands"
    );
    store.close().await;
}

async fn data_survives_closing_and_reopening(db: &Db) {
    let store = db.open().await;
    let batch: Vec<NewEvent> = (1..=20).map(|n| event(&format!("e-{n}"), "m-1", n)).collect();
    let seqs: Vec<i64> = store.append(&batch).await.expect("append").iter().map(appended).collect();
    let key = NewKey {
        id: "k-1".to_owned(),
        name: "ops".to_owned(),
        secret_sha256: sha(77),
        scopes: vec!["admin".to_owned()],
        created_unix_seconds: 1_700_000_000,
    };
    store.insert_key(&key).await.expect("insert_key");
    assert!(store.revoke_key("k-1", 1_700_000_100).await.expect("revoke"));
    store.close().await;
    drop(store);

    let store = db.open().await;
    let expected: Vec<StoredEvent> = batch.iter().zip(&seqs).map(|(e, &seq)| stored(seq, e)).collect();
    assert_eq!(all_events(&store, 8).await, expected);
    let keys = store.keys().await.expect("keys");
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].secret_sha256, sha(77));
    assert_eq!(keys[0].revoked_unix_seconds, Some(1_700_000_100));

    // The log goes on where it stopped, and remembers its ids.
    let outcomes = store.append(&[batch[0].clone(), event("e-21", "m-1", 21)]).await.expect("append");
    assert_eq!(outcomes[0], AppendOutcome::Existing { seq: seqs[0], body_sha256: batch[0].body_sha256 });
    assert!(appended(&outcomes[1]) > seqs[19]);
    assert_eq!(store.event_count().await.expect("count"), 21);
    store.close().await;
}

async fn the_outbox_records_once_leases_claims_and_replays(db: &Db) {
    use palier_store::outbox::{
        DeliveryOutcome, DeliveryStatus, NewNotification, NotificationQuery, Watermark, Webhook,
    };
    let store = db.open().await;
    let webhook = |id: &str| Webhook {
        id: id.into(),
        url: format!("http://127.0.0.1:9/{id}"),
        secret: "secret-0123456789".into(),
        kinds: vec!["tier_reached".into()],
        created_unix_seconds: 1,
    };
    store.insert_webhook(&webhook("wh_a")).await.expect("insert_webhook");
    store.insert_webhook(&webhook("wh_b")).await.expect("insert_webhook");
    assert_eq!(store.webhooks().await.expect("webhooks"), vec![webhook("wh_a"), webhook("wh_b")]);
    let notification = |id: &str, at: i64| NewNotification {
        id: id.into(),
        program: "p".into(),
        member: "m-1".into(),
        kind: "tier_reached".into(),
        section: "service".into(),
        at_unix_nanos: at,
        payload: format!("{{\"id\":\"{id}\"}}"),
        destinations: vec!["wh_a".into(), "nats".into()],
    };
    let batch = vec![notification("n-1", 10), notification("n-2", 20)];
    assert_eq!(store.insert_notifications(&batch, 1_000).await.expect("insert"), 2);
    // Derived again: nothing new, no second delivery.
    assert_eq!(store.insert_notifications(&batch, 2_000).await.expect("insert again"), 0);
    let all = store.notifications(&NotificationQuery { limit: 10, ..Default::default() }).await.expect("list");
    assert_eq!(all.iter().map(|n| n.id.as_str()).collect::<Vec<_>>(), ["n-1", "n-2"]);
    assert_eq!(all[0].deliveries.len(), 2);
    assert_eq!(all[0].created_unix_nanos, 1_000);

    // Claims: NATS ones only when asked; a claim leases (not claimable again before
    // the lease ends) and counts an attempt.
    let claimed = store.claim_deliveries(1_000, 5_000, 10, false).await.expect("claim");
    assert_eq!(
        claimed.iter().map(|c| (c.notification.as_str(), c.attempts)).collect::<Vec<_>>(),
        [("n-1", 1), ("n-2", 1)]
    );
    assert!(claimed.iter().all(|c| c.destination == "wh_a" && c.payload.contains(&c.notification)));
    assert!(store.claim_deliveries(4_999, 9_000, 10, false).await.expect("claim").is_empty(), "leased");
    let again = store.claim_deliveries(5_000, 9_000, 10, false).await.expect("claim after the lease");
    assert_eq!(again.iter().map(|c| c.attempts).collect::<Vec<_>>(), [2, 2]);
    assert_eq!(store.claim_deliveries(5_000, 9_000, 10, true).await.expect("claim nats").len(), 2);

    store.finish_delivery("n-1", "wh_a", &DeliveryOutcome::Delivered, 6_000).await.expect("finish");
    let dead = DeliveryOutcome::Failed { error: "HTTP 500".into(), retry_at: None };
    store.finish_delivery("n-2", "wh_a", &dead, 6_000).await.expect("finish");
    let retry = DeliveryOutcome::Failed { error: "timeout".into(), retry_at: Some(7_000) };
    store.finish_delivery("n-2", "nats", &retry, 6_000).await.expect("finish");
    let list = |status| NotificationQuery { status: Some(status), limit: 10, ..Default::default() };
    let ids =
        |records: Vec<palier_store::outbox::NotificationRecord>| records.into_iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(ids(store.notifications(&list(DeliveryStatus::Dead)).await.expect("dead")), ["n-2"]);
    assert_eq!(ids(store.notifications(&list(DeliveryStatus::Delivered)).await.expect("delivered")), ["n-1"]);
    assert_eq!(ids(store.notifications(&list(DeliveryStatus::Pending)).await.expect("pending")), ["n-1", "n-2"]);
    let n2 = store
        .notifications(&NotificationQuery { after: Some((10, "n-1".into())), limit: 10, ..Default::default() })
        .await
        .expect("page");
    assert_eq!(n2.len(), 1);
    let to_a = n2[0].deliveries.iter().find(|d| d.destination == "wh_a").expect("wh_a");
    assert_eq!((to_a.status(), to_a.attempts, to_a.last_error.as_deref()), (DeliveryStatus::Dead, 2, Some("HTTP 500")));
    let to_nats = n2[0].deliveries.iter().find(|d| d.destination == "nats").expect("nats");
    assert_eq!((to_nats.status(), to_nats.next_attempt_unix_nanos), (DeliveryStatus::Pending, 7_000));

    // Replay: dead and delivered become pending, due now, attempts from zero.
    assert_eq!(store.replay_notification("n-2", 8_000).await.expect("replay"), Some(1));
    assert_eq!(store.replay_notification("nope", 8_000).await.expect("replay"), None);
    assert!(store.notifications(&list(DeliveryStatus::Dead)).await.expect("dead").is_empty());
    let claimed = store.claim_deliveries(8_000, 9_000, 10, false).await.expect("claim");
    assert_eq!(claimed.iter().map(|c| (c.notification.as_str(), c.attempts)).collect::<Vec<_>>(), [("n-2", 1)]);

    // Deleting a webhook buries its pending deliveries.
    store
        .insert_notifications(
            &[NewNotification { destinations: vec!["wh_b".into()], ..notification("n-3", 30) }],
            9_000,
        )
        .await
        .expect("insert");
    assert!(store.delete_webhook("wh_b", 9_500).await.expect("delete"));
    assert!(!store.delete_webhook("wh_b", 9_500).await.expect("delete twice"));
    assert_eq!(store.webhooks().await.expect("webhooks"), vec![webhook("wh_a")]);
    assert_eq!(ids(store.notifications(&list(DeliveryStatus::Dead)).await.expect("dead")), ["n-3"]);

    // Watermarks: stored and replaced; the seq never moves back.
    let mark = |to: i64, seq: i64| Watermark { program: "p".into(), scanned_to_unix_nanos: to, scanned_seq: seq };
    store.set_watermark(&mark(100, 5)).await.expect("watermark");
    store.set_watermark(&mark(50, 3)).await.expect("watermark");
    assert_eq!(store.watermarks().await.expect("watermarks"), vec![mark(50, 5)]);
    let events = [event("e-1", "m-1", 1), event("e-2", "m-2", 2), event("e-3", "m-1", 3)];
    let seqs: Vec<i64> = store.append(&events).await.expect("append").iter().map(appended).collect();
    let changed = store.member_changes_after("net-a-porter", seqs[0]).await.expect("changes");
    assert_eq!(
        changed.iter().map(|c| (c.member.as_str(), c.max_seq)).collect::<Vec<_>>(),
        [("m-1", seqs[2]), ("m-2", seqs[1])]
    );
    assert_eq!(store.max_seq().await.expect("max seq"), seqs[2]);
    store.close().await;
}
