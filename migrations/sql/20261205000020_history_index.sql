-- The history index: each actor's log (its region's events in one partition, in position order)
-- cut into blocks of events. A block keeps the actor's counters before it and each event's
-- counter changes, so the counts as of an instant are one block per actor away, whatever the
-- log's length. Written by one indexer per database (the holder of an advisory lock), which
-- derives everything from `event_log`: it can be dropped and rebuilt at any time.
CREATE TABLE history_blocks (
    region          TEXT        NOT NULL,
    partition       INT         NOT NULL,
    first_position  BIGINT      NOT NULL,
    last_position   BIGINT      NOT NULL,
    -- The latest event time up to the block's last event (a running maximum, so it never
    -- decreases along the actor's log): the block an instant's prefix ends in is the first
    -- whose reach is after the instant.
    reach           TIMESTAMPTZ NOT NULL,
    events_before   BIGINT      NOT NULL,  -- events that reached the fold before the block
    counters_before BYTEA       NOT NULL,  -- the actor's counters before the block
    entries         BYTEA       NOT NULL,  -- each event: position, time, counted, changes
    entry_count     INT         NOT NULL,
    PRIMARY KEY (region, partition, first_position)
);
CREATE INDEX history_blocks_by_reach ON history_blocks (region, partition, reach, first_position);

-- Where the indexer resumes after a restart: each actor's fold at the end of a block.
CREATE TABLE history_folds (
    region          TEXT        NOT NULL,
    partition       INT         NOT NULL,
    position        BIGINT      NOT NULL,  -- the last event folded (a block's last)
    events          BIGINT      NOT NULL,
    reach           TIMESTAMPTZ NOT NULL,
    through_arrival BIGINT      NOT NULL,  -- the newest arrival folded
    fold            BYTEA       NOT NULL,
    PRIMARY KEY (region, partition)
);

-- Every event logged with an arrival up to `indexed_through` is in the blocks; queries use
-- the blocks only when nothing newer is logged, and replay the log otherwise.
CREATE TABLE history_index_state (
    singleton       BOOLEAN PRIMARY KEY DEFAULT true CHECK (singleton),
    indexed_through BIGINT  NOT NULL
);
INSERT INTO history_index_state (indexed_through) VALUES (0);

-- The indexer reads each actor's log in position order.
CREATE INDEX event_log_by_actor ON event_log (region, partition, position);
