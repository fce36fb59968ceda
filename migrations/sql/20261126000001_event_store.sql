-- The event store: the source of truth for this region's own writes.
-- `position` is the region's log order. Appends are serialized by a transaction-level advisory
-- lock, so positions are also commit order, which the outbox relay relies on.
CREATE TABLE events (
    position        BIGINT      PRIMARY KEY,
    event_id        UUID        NOT NULL UNIQUE,
    stream          TEXT        NOT NULL,
    sequence        BIGINT      NOT NULL CHECK (sequence > 0),
    model_id        TEXT        NOT NULL,
    event_type      TEXT        NOT NULL,
    schema_version  SMALLINT    NOT NULL,
    occurred_at     TIMESTAMPTZ NOT NULL,
    envelope        JSONB       NOT NULL,
    UNIQUE (stream, sequence)
);
CREATE SEQUENCE events_position_seq OWNED BY events.position;
CREATE INDEX events_by_model ON events (model_id, position);
CREATE INDEX events_by_time ON events (occurred_at);

-- Transactional outbox: one row per event, written in the append's transaction.
CREATE TABLE outbox (
    position      BIGINT      PRIMARY KEY REFERENCES events (position),
    topic         TEXT        NOT NULL,
    message_key   TEXT        NOT NULL,
    payload       BYTEA       NOT NULL,
    published_at  TIMESTAMPTZ
);
CREATE INDEX outbox_unpublished ON outbox (position) WHERE published_at IS NULL;

-- A retried command with the same key gets the first answer back and appends nothing.
CREATE TABLE idempotency_keys (
    principal           TEXT        NOT NULL,
    key                 TEXT        NOT NULL,
    request_fingerprint TEXT        NOT NULL,
    response_status     SMALLINT    NOT NULL,
    response_body       JSONB       NOT NULL,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (principal, key)
);

-- Read model of every model this node knows (its own now; other regions' via the projector).
CREATE TABLE catalogue_models (
    model_id     TEXT        PRIMARY KEY,
    provider     TEXT        NOT NULL,
    home_region  TEXT        NOT NULL,
    name         JSONB       NOT NULL,
    description  JSONB,
    lifecycle    TEXT        NOT NULL,
    status       TEXT        NOT NULL,
    version      BIGINT      NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL
);

CREATE TABLE catalogue_availability (
    region      TEXT        NOT NULL,
    model_id    TEXT        NOT NULL,
    served      BOOLEAN     NOT NULL,
    version     BIGINT      NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (region, model_id)
);

-- Projector checkpoints: a partition's CRDT state and the next offset to consume, committed
-- together so a restart resumes exactly where the last durable commit stopped.
CREATE TABLE projector_checkpoints (
    region       TEXT        NOT NULL,
    topic        TEXT        NOT NULL,
    partition    INT         NOT NULL,
    next_offset  BIGINT      NOT NULL,
    state        BYTEA       NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (topic, partition)
);
