-- Receipts per signature, not per change: a change's receipt is the first
-- kept signature (in arrival order) whose hashes name it. One row per
-- signed batch instead of one per change made each sync's bookkeeping
-- follow the number of changes (the standard upload's figure in
-- BENCHMARKS.md).
DROP TABLE signed_changes;
