-- Account types as data, and several trading accounts per user.
--
-- Figures: Exness Help Centre, "Trading account types" (get.exness.help, article 360013782240)
-- and "Raw Spread account" (article 360010606340), read 2026-12-01: Standard has no commission
-- and a 60 % margin call; Pro, Raw Spread and Zero have a 30 % margin call; every type stops
-- out at 0 %; maximum leverage is "1:Unlimited (subject to conditions)", which this platform
-- caps at its own 1:2000. Raw Spread charges "up to USD 3.50 per lot per side, depending on
-- the instrument"; Zero charges a per-instrument commission (third-party summaries give
-- USD 3.50 per side on EURUSD and more on gold). Spreads are published as "from" figures
-- (Standard from 0.2 pips, Pro from 0.1, Raw Spread and Zero from 0.0), so the markups below
-- are representative picks: Standard keeps each instrument's default markup (NULL), Pro about
-- half of it, Raw Spread and Zero none. Commission on crypto, where Exness quotes it per
-- instrument, is a representative ~0.005 % of the seed price per side.

CREATE TABLE account_types (
    name               text PRIMARY KEY CHECK (name ~ '^[a-z_]{1,32}$'),
    display_name       text NOT NULL,
    -- Margin level (equity / margin x 100 %) at or below which a margin call event is sent.
    margin_call_level  numeric NOT NULL CHECK (margin_call_level >= 0),
    -- Margin level at or below which positions are stopped out.
    stop_out_level     numeric NOT NULL CHECK (stop_out_level >= 0),
    max_leverage       integer NOT NULL CHECK (max_leverage BETWEEN 1 AND 2000),
    -- Listing order (Standard first).
    rank               integer NOT NULL UNIQUE,
    CHECK (stop_out_level <= margin_call_level)
);

-- One type's conditions on one instrument. An instrument without a row for a type trades on
-- that type with the instrument's default markup and no commission.
CREATE TABLE account_type_terms (
    account_type        text NOT NULL REFERENCES account_types (name),
    symbol              text NOT NULL REFERENCES instruments (symbol),
    -- Price units added to the exchange spread, half each side; NULL: the instrument's
    -- default markup (instruments.spread_markup).
    spread_markup       numeric CHECK (spread_markup >= 0),
    -- USD per lot, charged on open and again on close.
    commission_per_lot  numeric NOT NULL DEFAULT 0 CHECK (commission_per_lot >= 0),
    PRIMARY KEY (account_type, symbol)
);

INSERT INTO account_types (name, display_name, margin_call_level, stop_out_level, max_leverage, rank)
VALUES
    ('standard',   'Standard',   60, 0, 2000, 1),
    ('pro',        'Pro',        30, 0, 2000, 2),
    ('raw_spread', 'Raw Spread', 30, 0, 2000, 3),
    ('zero',       'Zero',       30, 0, 2000, 4);

INSERT INTO account_type_terms (account_type, symbol, spread_markup, commission_per_lot) VALUES
    ('standard',   'BTCUSD', NULL,    0),
    ('standard',   'ETHUSD', NULL,    0),
    ('standard',   'SOLUSD', NULL,    0),
    ('standard',   'EURUSD', NULL,    0),
    ('standard',   'XAUUSD', NULL,    0),
    ('pro',        'BTCUSD', 5.00,    0),
    ('pro',        'ETHUSD', 0.50,    0),
    ('pro',        'SOLUSD', 0.020,   0),
    ('pro',        'EURUSD', 0.00004, 0),
    ('pro',        'XAUUSD', 0.10,    0),
    ('raw_spread', 'BTCUSD', 0,       3.25),
    ('raw_spread', 'ETHUSD', 0,       0.16),
    ('raw_spread', 'SOLUSD', 0,       0.01),
    ('raw_spread', 'EURUSD', 0,       3.50),
    ('raw_spread', 'XAUUSD', 0,       3.50),
    ('zero',       'BTCUSD', 0,       3.25),
    ('zero',       'ETHUSD', 0,       0.16),
    ('zero',       'SOLUSD', 0,       0.01),
    ('zero',       'EURUSD', 0,       3.50),
    ('zero',       'XAUUSD', 0,       5.00);

-- A user now holds several accounts; exactly one is the default (what requests without an
-- account_id act on). Existing accounts are their user's default Standard demo account.
ALTER TABLE trading_accounts
    DROP CONSTRAINT trading_accounts_user_id_key,
    ADD COLUMN account_type text NOT NULL DEFAULT 'standard' REFERENCES account_types (name),
    ADD COLUMN kind smallint NOT NULL DEFAULT 1 CHECK (kind IN (1, 2)),
    ADD COLUMN swap_free boolean NOT NULL DEFAULT false,
    ADD COLUMN is_default boolean NOT NULL DEFAULT true;
ALTER TABLE trading_accounts ALTER COLUMN is_default DROP DEFAULT;
CREATE UNIQUE INDEX trading_accounts_one_default ON trading_accounts (user_id) WHERE is_default;
CREATE INDEX trading_accounts_user ON trading_accounts (user_id);

-- Commission: charged on open (kept on the position) and on close (on the trade, with the
-- open side of the part closed). Ledger kinds 4 WITHDRAWAL, 5 COMMISSION, 6 SWAP.
ALTER TABLE trading_positions ADD COLUMN commission numeric NOT NULL DEFAULT 0;
ALTER TABLE trading_trades ADD COLUMN commission numeric NOT NULL DEFAULT 0;
ALTER TABLE trading_ledger
    DROP CONSTRAINT trading_ledger_kind_check,
    ADD CONSTRAINT trading_ledger_kind_check CHECK (kind BETWEEN 1 AND 6);

-- ListTransactions: an account's entries newest first, a page at a time.
CREATE INDEX trading_ledger_account_entry ON trading_ledger (account_id, entry_id DESC);
