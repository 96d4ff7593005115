-- Tick store and candle rollups, written by the MarketData tick writer (services/market/
-- tick_writer.py) from Kafka `market.quotes`. Prices are the quotes clients see (with markup).

-- Every quote published, in batches with COPY. No unique key: the writer stores its Kafka
-- offsets in market_consumer_offsets in the same transaction, so a batch lands exactly once.
CREATE TABLE ticks (
    symbol       text        NOT NULL,
    -- When the exchange quoted it.
    time         timestamptz NOT NULL,
    bid          numeric     NOT NULL,
    ask          numeric     NOT NULL,
    source       text        NOT NULL,
    -- When MarketData published it to Kafka.
    publish_time timestamptz NOT NULL
);
CREATE INDEX ticks_symbol_time ON ticks (symbol, time DESC);

-- OHLC of the bid per interval, kept up to date by the tick writer in the same transaction
-- as the ticks, so GetCandles reads at most `limit` rows for any range.
CREATE TABLE candles (
    symbol      text        NOT NULL,
    -- 60 (1m), 300 (5m), 900 (15m), 3600 (1h), 14400 (4h), 86400 (1d); aligned to the UTC epoch.
    interval_s  integer     NOT NULL CHECK (interval_s IN (60, 300, 900, 3600, 14400, 86400)),
    open_time   timestamptz NOT NULL,
    open        numeric     NOT NULL,
    high        numeric     NOT NULL,
    low         numeric     NOT NULL,
    close       numeric     NOT NULL,
    tick_count  bigint      NOT NULL CHECK (tick_count > 0),
    -- Quote times of the open and the close: merging a later batch keeps the earliest open and
    -- the latest close.
    first_time  timestamptz NOT NULL,
    last_time   timestamptz NOT NULL,
    PRIMARY KEY (symbol, interval_s, open_time),
    CHECK (low <= high)
);

-- Kafka positions of consumers that store their progress with their data (exactly-once into
-- PostgreSQL): next_offset is the first offset not yet applied.
CREATE TABLE market_consumer_offsets (
    consumer    text        NOT NULL,
    topic       text        NOT NULL,
    partition   integer     NOT NULL,
    next_offset bigint      NOT NULL CHECK (next_offset >= 0),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, topic, partition)
);

-- TimescaleDB, where the extension is installed (the docker-compose image): ticks become a
-- hypertable with compression and retention. On plain PostgreSQL (what runs in development
-- and tests) this block does nothing and the same queries work unchanged.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb') THEN
        RETURN;
    END IF;
    BEGIN
        CREATE EXTENSION IF NOT EXISTS timescaledb;
    EXCEPTION WHEN OTHERS THEN
        -- Installed but not preloaded (shared_preload_libraries): stay on plain tables.
        RAISE NOTICE 'timescaledb is not loadable, ticks stay a plain table: %', SQLERRM;
        RETURN;
    END;
    EXECUTE $q$SELECT create_hypertable('ticks', 'time', chunk_time_interval => INTERVAL '1 day',
                                        migrate_data => true)$q$;
    EXECUTE $q$ALTER TABLE ticks SET (timescaledb.compress,
                                      timescaledb.compress_segmentby = 'symbol',
                                      timescaledb.compress_orderby = 'time DESC')$q$;
    EXECUTE $q$SELECT add_compression_policy('ticks', INTERVAL '7 days')$q$;
    EXECUTE $q$SELECT add_retention_policy('ticks', INTERVAL '180 days')$q$;
END
$$;
