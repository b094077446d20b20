-- Visits: one Automerge document each, stored as an append-only list of
-- chunks (a snapshot followed by incremental change chunks), plus a summary
-- row so that listing never loads a document.
CREATE TABLE visits (
    id            TEXT PRIMARY KEY NOT NULL,
    unit_code     TEXT NOT NULL,
    unit_name     TEXT NOT NULL,
    unit_kind     TEXT NOT NULL,
    campaign      TEXT NOT NULL,
    team          TEXT NOT NULL,
    scheduled_on  TEXT NOT NULL,
    status        TEXT NOT NULL,
    conflicts     INTEGER NOT NULL,
    tally         TEXT NOT NULL,
    heads         TEXT NOT NULL,
    updated_at    TEXT NOT NULL
) STRICT;

CREATE TABLE visit_chunks (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    visit_id  TEXT NOT NULL REFERENCES visits(id) ON DELETE CASCADE,
    kind      TEXT NOT NULL CHECK (kind IN ('snapshot', 'changes')),
    data      BLOB NOT NULL
) STRICT;

CREATE INDEX visit_chunks_by_visit ON visit_chunks(visit_id, seq);
