-- Signatures are read and checked by visit (a sync's offers, a download,
-- receipts, verification, and the check that a signature is kept once):
-- an index, so that none of these reads the whole table.
CREATE INDEX signatures_by_visit ON signatures (visit_id);
