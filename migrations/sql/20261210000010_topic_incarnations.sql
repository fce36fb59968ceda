-- A reader's offsets hold only within one incarnation of a topic: a topic deleted and created
-- again (a broker keeping topics in memory restarted, an operator recreating it, then
-- `region-node republish`) numbers its records from zero again. Each stored offset now says
-- which record it follows (the Kafka timestamp of the record at next_offset - 1, NULL before
-- the first or for rows written before this migration) and how many times the reader started
-- the partition over on a new incarnation. Checkpoints order by (incarnation, next_offset),
-- so a late commit of an owner that read the old incarnation still cannot overwrite.
ALTER TABLE projector_checkpoints
    ADD COLUMN incarnation    INT    NOT NULL DEFAULT 0,
    ADD COLUMN last_record_ms BIGINT;
ALTER TABLE catalogue_offsets
    ADD COLUMN incarnation    INT    NOT NULL DEFAULT 0,
    ADD COLUMN last_record_ms BIGINT;
