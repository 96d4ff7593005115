-- Trading engine state. The engine is the only writer; it commits many commands per transaction
-- (group commit) and rebuilds its memory from these tables on start. Ids are allocated by the
-- engine and carry the shard in their high bits (shard << 48), so shards never collide.

CREATE TABLE trading_accounts (
    account_id   bigint PRIMARY KEY,
    -- One USD account per user for now.
    user_id      text NOT NULL UNIQUE,
    shard        integer NOT NULL CHECK (shard >= 0),
    currency     text NOT NULL DEFAULT 'USD',
    -- Always equals the sum of the account's ledger entries.
    balance      numeric NOT NULL,
    leverage     integer NOT NULL CHECK (leverage BETWEEN 1 AND 2000),
    margin_call  boolean NOT NULL DEFAULT false,
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL
);
CREATE INDEX trading_accounts_shard ON trading_accounts (shard);

CREATE TABLE trading_orders (
    order_id         bigint PRIMARY KEY,
    account_id       bigint NOT NULL REFERENCES trading_accounts (account_id),
    -- Idempotency key; a retry with the same key returns the first result.
    client_order_id  text,
    -- The request's parameters, to tell a retry from a reuse of the key.
    fingerprint      text NOT NULL DEFAULT '',
    symbol           text NOT NULL,
    side             smallint NOT NULL CHECK (side IN (1, 2)),
    type             smallint NOT NULL CHECK (type IN (1, 2, 3)),
    status           smallint NOT NULL CHECK (status BETWEEN 1 AND 5),
    volume           numeric NOT NULL CHECK (volume > 0),
    price            numeric,
    stop_loss        numeric,
    take_profit      numeric,
    leverage         integer NOT NULL,
    fill_price       numeric,
    position_id      bigint,
    reject_reason    text NOT NULL DEFAULT '',
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    expire_at        timestamptz,
    UNIQUE (account_id, client_order_id)
);
CREATE INDEX trading_orders_pending ON trading_orders (account_id) WHERE status = 1;

CREATE TABLE trading_positions (
    position_id  bigint PRIMARY KEY,
    account_id   bigint NOT NULL REFERENCES trading_accounts (account_id),
    order_id     bigint NOT NULL,
    symbol       text NOT NULL,
    side         smallint NOT NULL CHECK (side IN (1, 2)),
    -- Open volume (shrinks on partial closes; the last open volume once closed).
    volume       numeric NOT NULL CHECK (volume > 0),
    open_price   numeric NOT NULL,
    stop_loss    numeric,
    take_profit  numeric,
    leverage     integer NOT NULL,
    margin       numeric NOT NULL,
    opened_at    timestamptz NOT NULL,
    closed_at    timestamptz
);
CREATE INDEX trading_positions_open ON trading_positions (account_id) WHERE closed_at IS NULL;

CREATE TABLE trading_trades (
    trade_id      bigint PRIMARY KEY,
    account_id    bigint NOT NULL REFERENCES trading_accounts (account_id),
    position_id   bigint NOT NULL,
    symbol        text NOT NULL,
    side          smallint NOT NULL,
    volume        numeric NOT NULL,
    open_price    numeric NOT NULL,
    close_price   numeric NOT NULL,
    realized_pnl  numeric NOT NULL,
    close_reason  smallint NOT NULL CHECK (close_reason BETWEEN 1 AND 4),
    opened_at     timestamptz NOT NULL,
    closed_at     timestamptz NOT NULL
);
CREATE INDEX trading_trades_account ON trading_trades (account_id, trade_id DESC);

CREATE TABLE trading_ledger (
    entry_id       bigint PRIMARY KEY,
    account_id     bigint NOT NULL REFERENCES trading_accounts (account_id),
    kind           smallint NOT NULL CHECK (kind BETWEEN 1 AND 3),
    amount         numeric NOT NULL,
    balance_after  numeric NOT NULL,
    reference_id   text NOT NULL DEFAULT '',
    created_at     timestamptz NOT NULL
);
CREATE INDEX trading_ledger_account ON trading_ledger (account_id);

-- Append-only event journal: the outbox of `trading.events`. `payload` is the serialized
-- exness.trading.v1.AccountEvent, whose `sequence` equals this row's.
CREATE TABLE trading_journal (
    shard       integer NOT NULL,
    sequence    bigint NOT NULL,
    account_id  bigint NOT NULL,
    event_type  smallint NOT NULL,
    payload     bytea NOT NULL,
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (shard, sequence)
);

-- How far the outbox relay has published, per shard, and the broker offsets it saw acknowledged
-- (an end offset below them means the broker lost records: publish again from the start).
CREATE TABLE trading_outbox (
    shard               integer PRIMARY KEY,
    published_sequence  bigint NOT NULL DEFAULT 0,
    partition_offsets   jsonb NOT NULL DEFAULT '{}'::jsonb,
    updated_at          timestamptz NOT NULL DEFAULT now()
);
