-- The history indexer's resume points in parts, as the projector's checkpoints: history_folds.fold
-- now holds the fold's head (counters, watermark, held events, how many streams it knows) and
-- each stream's facts are a row here, written only when that stream moved since the actor's
-- last resume point, in the same transaction as the head. A resume point's cost follows what
-- changed instead of the catalogue's size, so one is saved every few thousand events and a
-- restarted indexer folds only those again. A fold still holding a whole snapshot (saved
-- before this migration) is read as before and replaced by parts at its actor's next save.
CREATE TABLE history_fold_facts (
    region     TEXT  NOT NULL,
    partition  INT   NOT NULL,
    stream     TEXT  NOT NULL,
    facts      BYTEA NOT NULL,
    PRIMARY KEY (region, partition, stream)
);
