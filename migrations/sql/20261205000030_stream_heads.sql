-- Each stream's folded state after its last event, written in the append's transaction: a
-- command reads one row to decide instead of its stream's whole history. A head whose version
-- is not the stream's last sequence (an older binary appended without writing it) or whose
-- format this binary does not know is ignored, and the stream is folded from its events.
CREATE TABLE stream_heads (
    stream  TEXT     PRIMARY KEY,
    version BIGINT   NOT NULL CHECK (version > 0),
    format  SMALLINT NOT NULL,
    state   JSONB    NOT NULL
);
