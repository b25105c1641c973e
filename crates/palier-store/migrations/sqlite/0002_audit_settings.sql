-- The operators' audit trail, hash-chained, and service settings (secrets).

CREATE TABLE audit_log (
    seq           INTEGER PRIMARY KEY,                   -- 1, 2, 3 … with no gap
    at_unix_nanos INTEGER NOT NULL,
    actor         TEXT    NOT NULL,                      -- API key id, or cli:…
    action        TEXT    NOT NULL,
    subject       TEXT    NOT NULL,                      -- pseudonymous reference, never personal data
    detail        TEXT    NOT NULL,                      -- JSON without personal data
    prev_hash     BLOB    NOT NULL CHECK (length(prev_hash) = 32),
    hash          BLOB    NOT NULL UNIQUE CHECK (length(hash) = 32)
);

CREATE TABLE settings (
    name  TEXT PRIMARY KEY NOT NULL,
    value BLOB NOT NULL
);
