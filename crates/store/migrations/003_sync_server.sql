-- Sync: device settings (cursor, credentials) on phones; on the server,
-- enrolled devices, single-use enrollment codes and the feed of visit
-- updates that devices follow with a cursor. Secrets are stored as SHA-256
-- digests only.
CREATE TABLE settings (
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
) STRICT;

CREATE TABLE enrollment_codes (
    code_hash   BLOB PRIMARY KEY NOT NULL,
    user_id     TEXT NOT NULL,
    team        TEXT NOT NULL,
    role        TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    used_at     TEXT,
    device_id   TEXT
) STRICT;

CREATE TABLE devices (
    device_id    TEXT PRIMARY KEY NOT NULL,
    user_id      TEXT NOT NULL,
    team         TEXT NOT NULL,
    role         TEXT NOT NULL,
    name         TEXT NOT NULL,
    token_hash   BLOB NOT NULL UNIQUE,
    enrolled_at  TEXT NOT NULL,
    revoked_at   TEXT
) STRICT;

-- One row per stored update of a visit; `nonce` lets a device's cursor
-- prove it came from this database (a restored backup fails the check).
CREATE TABLE feed (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    visit_id  TEXT NOT NULL,
    team      TEXT NOT NULL,
    nonce     INTEGER NOT NULL
) STRICT;

CREATE INDEX feed_by_team ON feed(team, seq);
