-- History replays each actor (region, partition) in its log order and uses the event time only
-- to decide where an actor's prefix ends, so a clock step back can never reorder a region's
-- events. Positions grow with each region's log, so `position` order is every actor's log
-- order; ordered by (position, region) the rows also follow the heap (insertion) order closely,
-- which lets the planner scan this index instead of sorting the log. Replays no longer read the
-- log in time order.
CREATE INDEX event_log_by_position ON event_log (position, region);
DROP INDEX event_log_by_time;
