-- The node's own log order: `arrival` numbers events as the catalogue follower commits them,
-- across every region, so `GET /v1/changes?after=` can follow the log with a cursor and never
-- miss or repeat an event. The follower takes an advisory lock before inserting (numbers are
-- handed out under it and it is held until commit), so a larger arrival is never visible
-- before a smaller one. Existing rows are numbered in the order history replays them.
CREATE SEQUENCE event_log_arrival;
ALTER TABLE event_log ADD COLUMN arrival BIGINT;
UPDATE event_log AS e SET arrival = o.n
  FROM (SELECT region, position, row_number() OVER (ORDER BY position, region) AS n
          FROM event_log) AS o
 WHERE e.region = o.region AND e.position = o.position;
SELECT setval('event_log_arrival', COALESCE((SELECT max(arrival) FROM event_log), 0) + 1, false);
ALTER TABLE event_log ALTER COLUMN arrival SET DEFAULT nextval('event_log_arrival'),
                      ALTER COLUMN arrival SET NOT NULL;
ALTER SEQUENCE event_log_arrival OWNED BY event_log.arrival;
CREATE UNIQUE INDEX event_log_by_arrival ON event_log (arrival);
