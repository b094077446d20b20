-- A kept signature's batch is named by its actor and sequence ranges
-- alone; the hashes it was made over are read off the visit's document
-- when an audit needs them. The copy of those hashes (32 bytes per change,
-- 16 KB for a 500-change batch, more than the document itself) goes.
ALTER TABLE signatures DROP COLUMN hashes;
