-- The feed keeps one row per visit: its latest update. A device's cursor is
-- checked against the generation that wrote its row (one per opening of the
-- server's store: a random nonce and the range of feed rows it wrote), so a
-- row dropped because the visit was updated again leaves the cursors that
-- name it valid, and a restored backup still fails cursors from after it.
-- Each row already written becomes a generation of its own, so every cursor
-- held by a device stays valid across the upgrade.
CREATE TABLE feed_generations (
    nonce     INTEGER PRIMARY KEY NOT NULL,
    first_seq INTEGER NOT NULL,
    last_seq  INTEGER NOT NULL
) STRICT;

INSERT OR IGNORE INTO feed_generations (nonce, first_seq, last_seq)
    SELECT nonce, seq, seq FROM feed;

DELETE FROM feed WHERE seq NOT IN (SELECT max(seq) FROM feed GROUP BY visit_id);

CREATE UNIQUE INDEX feed_by_visit ON feed(visit_id);
