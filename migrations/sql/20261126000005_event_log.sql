-- Every event of every region this node has read from the region topics (its own included):
-- the log that history queries (`?at=`, series, a model's history) replay. Written by the
-- catalogue follower in the same transaction as the catalogue rows and offsets it produced;
-- re-delivered events are ignored (ON CONFLICT DO NOTHING on the origin's position).
CREATE TABLE event_log (
    region          TEXT        NOT NULL,  -- origin region
    position        BIGINT      NOT NULL,  -- position in the origin region's event store
    partition       INT         NOT NULL,  -- Kafka partition of the region's topic: the CRDT actor
    kafka_offset    BIGINT      NOT NULL,
    event_id        UUID        NOT NULL,
    model_id        TEXT        NOT NULL,
    stream          TEXT        NOT NULL,
    sequence        BIGINT      NOT NULL,
    event_type      TEXT        NOT NULL,
    schema_version  SMALLINT    NOT NULL,
    occurred_at     TIMESTAMPTZ NOT NULL,
    envelope        JSONB       NOT NULL,  -- decoded (upcast to today's shape), re-encoded
    PRIMARY KEY (region, position)
);
-- History replays in this order (a prefix per instant): an index scan, no sort.
CREATE INDEX event_log_by_time ON event_log (occurred_at, region, position);
CREATE INDEX event_log_by_model ON event_log (model_id, occurred_at);

-- Backfill: the follower re-reads every region topic from offset 0 (applying events to the
-- catalogue is idempotent per stream sequence), which logs the events it had read before this
-- table existed.
DELETE FROM catalogue_offsets;
