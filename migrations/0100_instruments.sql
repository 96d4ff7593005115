-- Instruments and their trading conditions (per-instrument config lives here, not in code).
-- Read by MarketData (listing, spread markup, quote validation) and the Trading engine
-- (contract size, volume limits, leverage cap, margin levels of the instrument's group).
CREATE TABLE instrument_groups (
    category           text PRIMARY KEY CHECK (category IN ('crypto', 'forex', 'metal')),
    -- Margin level (equity / margin x 100 %) at or below which a margin call event is sent.
    margin_call_level  numeric NOT NULL CHECK (margin_call_level >= 0),
    -- Margin level at or below which positions are stopped out.
    stop_out_level     numeric NOT NULL CHECK (stop_out_level >= 0),
    CHECK (stop_out_level <= margin_call_level)
);

INSERT INTO instrument_groups (category, margin_call_level, stop_out_level) VALUES
    ('crypto', 60, 0),
    ('forex', 60, 0),
    ('metal', 60, 0);

CREATE TABLE instruments (
    symbol          text PRIMARY KEY CHECK (symbol ~ '^[A-Z0-9]{2,20}$'),
    description     text NOT NULL,
    category        text NOT NULL REFERENCES instrument_groups (category),
    price_decimals  integer NOT NULL CHECK (price_decimals BETWEEN 0 AND 10),
    -- Units of the base asset per lot.
    contract_size   numeric NOT NULL CHECK (contract_size > 0),
    volume_min      numeric NOT NULL CHECK (volume_min > 0),
    volume_step     numeric NOT NULL CHECK (volume_step > 0),
    volume_max      numeric NOT NULL CHECK (volume_max >= volume_min),
    max_leverage    integer NOT NULL CHECK (max_leverage >= 1),
    -- Added to the exchange spread, in price units (half each side of the mid).
    spread_markup   numeric NOT NULL DEFAULT 0 CHECK (spread_markup >= 0),
    quote_currency  text NOT NULL DEFAULT 'USD',
    -- Start price of the offline synthetic feed and its per-second volatility (fraction).
    synthetic_start numeric NOT NULL CHECK (synthetic_start > 0),
    synthetic_vol   numeric NOT NULL DEFAULT 0.0005 CHECK (synthetic_vol >= 0),
    enabled         boolean NOT NULL DEFAULT true
);

INSERT INTO instruments (symbol, description, category, price_decimals, contract_size,
                         volume_min, volume_step, volume_max, max_leverage, spread_markup,
                         synthetic_start, synthetic_vol) VALUES
    ('BTCUSD', 'Bitcoin vs US Dollar',   'crypto', 2, 1,      0.01, 0.01, 100,  400,  10.00,   65000,  0.0004),
    ('ETHUSD', 'Ethereum vs US Dollar',  'crypto', 2, 1,      0.01, 0.01, 1000, 400,  1.00,    3200,   0.0005),
    ('SOLUSD', 'Solana vs US Dollar',    'crypto', 3, 1,      0.1,  0.1,  10000, 400, 0.050,   150,    0.0007),
    ('EURUSD', 'Euro vs US Dollar',      'forex',  5, 100000, 0.01, 0.01, 200,  2000, 0.00010, 1.08500, 0.00005),
    ('XAUUSD', 'Gold vs US Dollar',      'metal',  2, 100,    0.01, 0.01, 200,  2000, 0.20,    2400,   0.0001);
