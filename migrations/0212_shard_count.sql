-- How many engine shards the data was created with. Users are assigned a shard at registration
-- (user id mod shard count) and every id a shard allocates carries it, so the count is a property
-- of the data: it is recorded by the first Auth or Trading process that starts, and a process
-- started with another count is refused (re-sharding is out of scope). One row at most.
CREATE TABLE shard_layout (
    singleton    boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    shard_count  integer NOT NULL CHECK (shard_count >= 1),
    created_at   timestamptz NOT NULL DEFAULT now()
);
