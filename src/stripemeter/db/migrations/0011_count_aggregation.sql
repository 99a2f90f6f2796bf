-- The `count` aggregation (stripemeter.aggregations): a mapping may bill the number of
-- usage events, from the hourly buckets' `event_count` (kept since 0001), pushed as
-- deltas to a meter with the `sum` formula. Outbox series record their mapping's kind,
-- so push_state takes the new name too. Adding a kind widens these two constraints.
ALTER TABLE price_mappings DROP CONSTRAINT price_mappings_aggregation_check;
ALTER TABLE price_mappings ADD CONSTRAINT price_mappings_aggregation_check
    CHECK (aggregation IN ('sum', 'max', 'last', 'count'));
ALTER TABLE push_state DROP CONSTRAINT push_state_aggregation_check;
ALTER TABLE push_state ADD CONSTRAINT push_state_aggregation_check
    CHECK (aggregation IN ('sum', 'max', 'last', 'count'));
