-- The counter-state exchange's epoch (`region-node reset-states`): states published in an older
-- epoch are void. One row; written by `reset-states` and by the node whenever it follows a
-- newer epoch, read at start and every heartbeat (several processes of a region share it).
CREATE TABLE exchange_epoch (
    singleton   BOOLEAN     PRIMARY KEY DEFAULT TRUE CHECK (singleton),
    epoch       BIGINT      NOT NULL CHECK (epoch >= 0),
    updated_at  TIMESTAMPTZ NOT NULL
);

-- The epoch of each saved state, so a reset can forget older ones in one statement.
ALTER TABLE known_actor_states ADD COLUMN epoch BIGINT NOT NULL DEFAULT 0;
