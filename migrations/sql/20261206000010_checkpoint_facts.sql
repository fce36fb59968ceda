-- A projector checkpoint in parts: projector_checkpoints.state now holds the fold's head
-- (counters, watermark, held events, how many streams it knows) and each stream's facts are a
-- row here, written only when that stream moved, in the same transaction as the head. A
-- commit's cost follows what changed since the last one instead of the catalogue's size.
-- A head still holding a whole snapshot (written before this migration) is read as before and
-- replaced by parts at the partition's next commit.
CREATE TABLE projector_checkpoint_facts (
    topic      TEXT  NOT NULL,
    partition  INT   NOT NULL,
    stream     TEXT  NOT NULL,
    facts      BYTEA NOT NULL,
    PRIMARY KEY (topic, partition, stream)
);
