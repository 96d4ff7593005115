-- Swaps: per-instrument overnight rates, charged at the daily rollover (22:00 UTC) on every
-- open position of an account that is not swap-free. swap_type: 0 none, 1 points per lot per
-- day (a point is the last price decimal), 2 percent per year of the position's value
-- (1/360 a day). Negative rates are charges. Forex and metals charge three days at the
-- Wednesday rollover (covering the weekend) and none at weekend rollovers; crypto every day.
ALTER TABLE instruments
    ADD COLUMN swap_type smallint NOT NULL DEFAULT 0 CHECK (swap_type IN (0, 1, 2)),
    ADD COLUMN swap_long numeric NOT NULL DEFAULT 0,
    ADD COLUMN swap_short numeric NOT NULL DEFAULT 0,
    ADD COLUMN triple_swap_weekday smallint NOT NULL DEFAULT 0
        CHECK (triple_swap_weekday BETWEEN 0 AND 7);

-- Representative figures in the shape Exness publishes for Standard accounts (its contract
-- specifications list forex and metals swaps in points, long and short, triple on Wednesday;
-- crypto swaps as a yearly percentage charged every day): not live rates.
UPDATE instruments SET swap_type = 1, swap_long = -8.5, swap_short = 3.2, triple_swap_weekday = 3
    WHERE symbol = 'EURUSD';
UPDATE instruments SET swap_type = 1, swap_long = -45.0, swap_short = 22.0,
    triple_swap_weekday = 3 WHERE symbol = 'XAUUSD';
UPDATE instruments SET swap_type = 2, swap_long = -20, swap_short = -10, triple_swap_weekday = 0
    WHERE category = 'crypto';

-- Swaps a position has accumulated (on a trade: the part closed).
ALTER TABLE trading_positions ADD COLUMN swap numeric NOT NULL DEFAULT 0;
ALTER TABLE trading_trades ADD COLUMN swap numeric NOT NULL DEFAULT 0;

-- The last rollover each shard has charged (or passed with nothing to charge), committed with
-- its charges: a restarted engine charges only the rollovers after it, each exactly once.
CREATE TABLE trading_rollovers (
    shard          integer PRIMARY KEY,
    last_rollover  timestamptz NOT NULL
);
