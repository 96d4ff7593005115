-- The record each stored position follows: a digest of the value at next_offset - 1. The
-- embedded broker keeps its logs in memory, so after a restart the same offsets name other
-- records; a consumer compares this digest with what the broker now holds at that offset
-- before trusting a stored position (NULL: written before this column existed, not checked).
ALTER TABLE market_consumer_offsets ADD COLUMN last_record_digest bytea;
