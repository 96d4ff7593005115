-- The W3C traceparent of the command that emitted each journal event (NULL when it was not
-- traced): the outbox relay puts it in the Kafka record's headers, so a trace follows the event
-- from the edge through the commit to the topic.
ALTER TABLE trading_journal ADD COLUMN traceparent text;
