-- Where this node's catalogue follower stands in each region's events topic. Committed in the
-- same transaction as the catalogue rows it produced; the Kafka group offset is only a hint.
CREATE TABLE catalogue_offsets (
    topic        TEXT   NOT NULL,
    partition    INT    NOT NULL,
    next_offset  BIGINT NOT NULL,
    PRIMARY KEY (topic, partition)
);

-- Finds models a region still serves although they are retired (the withdrawal worker's query).
CREATE INDEX catalogue_availability_served ON catalogue_availability (region) WHERE served;
