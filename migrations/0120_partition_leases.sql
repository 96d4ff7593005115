-- Who consumes which partition, for consumers that split a topic among their members through
-- PostgreSQL instead of a Kafka consumer group (kit/data/partition_leases.py): the embedded
-- broker can keep a departed member as group leader and stall a group for minutes.
-- A member is live while its row has not expired; each partition is leased to at most one
-- member, until it releases it or the lease expires.
CREATE TABLE consumer_members (
    consumer    text NOT NULL,
    topic       text NOT NULL,
    member      text NOT NULL,
    expires_at  timestamptz NOT NULL,
    PRIMARY KEY (consumer, topic, member)
);

CREATE TABLE partition_leases (
    consumer    text NOT NULL,
    topic       text NOT NULL,
    partition   integer NOT NULL CHECK (partition >= 0),
    owner       text,
    expires_at  timestamptz,
    PRIMARY KEY (consumer, topic, partition)
);
