-- No planner statistics for the columns no statement filters, joins or sorts on: the stored
-- envelopes, payloads, answers and fold facts. ANALYZE (the growth analyzer's, autovacuum's)
-- otherwise sorts its sample of these values to build histograms no plan reads: on an event
-- log of 600,000 events, half of each ANALYZE's time (400 ms against 207 ms) was the envelopes'.
ALTER TABLE events ALTER COLUMN envelope SET STATISTICS 0;
ALTER TABLE event_log ALTER COLUMN envelope SET STATISTICS 0;
ALTER TABLE outbox ALTER COLUMN payload SET STATISTICS 0;
ALTER TABLE idempotency_keys
    ALTER COLUMN request_fingerprint SET STATISTICS 0,
    ALTER COLUMN response_body SET STATISTICS 0;
ALTER TABLE stream_heads ALTER COLUMN state SET STATISTICS 0;
ALTER TABLE projector_checkpoint_facts ALTER COLUMN facts SET STATISTICS 0;
ALTER TABLE history_fold_facts ALTER COLUMN facts SET STATISTICS 0;
