-- Changes this device made and has not signed yet, recorded when each edit
-- is stored, so that a sync signs them without loading the documents to
-- find them. A store that already held visits before this migration scans
-- its visits once at its next sync (setting sign.scan_all).
CREATE TABLE own_changes (
    id        INTEGER PRIMARY KEY,
    visit_id  TEXT NOT NULL REFERENCES visits(id) ON DELETE CASCADE,
    hash      BLOB NOT NULL,
    actor     BLOB NOT NULL,
    seq       INTEGER NOT NULL
) STRICT;
CREATE INDEX own_changes_by_visit ON own_changes (visit_id, id);
-- Per visit, the last own_changes row a kept signature covers. Rows at or
-- below it are pruned when the visit is compacted, off the sync path.
CREATE TABLE own_signed (
    visit_id  TEXT PRIMARY KEY NOT NULL REFERENCES visits(id) ON DELETE CASCADE,
    mark      INTEGER NOT NULL
) STRICT;
INSERT INTO settings (key, value)
    SELECT 'sign.scan_all', '1' WHERE EXISTS (SELECT 1 FROM visits);
