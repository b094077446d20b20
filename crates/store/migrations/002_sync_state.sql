-- What a sync peer (the server, for a device) last confirmed it holds of
-- each visit: the heads it acknowledged. Written only after a sync response
-- has been received and applied.
CREATE TABLE sync_state (
    visit_id        TEXT NOT NULL REFERENCES visits(id) ON DELETE CASCADE,
    peer            TEXT NOT NULL,
    confirmed_heads TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    PRIMARY KEY (visit_id, peer)
) STRICT;

CREATE INDEX visits_by_campaign ON visits(campaign, scheduled_on);
