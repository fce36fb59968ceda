-- Every actor state this node has merged (from its own projector and from the exchange), so a
-- restarted node starts from what it knew instead of from nothing. CRDT states: an old row can
-- only be joined, never move a count back.
CREATE TABLE known_actor_states (
    region      TEXT        NOT NULL,
    partition   INT         NOT NULL,
    state       BYTEA       NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (region, partition)
);
