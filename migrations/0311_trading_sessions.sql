-- Trading sessions: the weekly windows (UTC) in which an instrument trades. An instrument with
-- no rows is always open (crypto). Outside its windows the engine refuses market orders and
-- closes (MARKET_CLOSED) and lets no pending order, stop-loss, take-profit or stop-out fire.
--
-- Hours as Exness publishes them (summer time, UTC; https://get.exness.help/hc/en-us/articles/
-- 4405235684498-Instrument-trading-hours): forex opens Sunday 21:05 and closes Friday 20:59
-- (the last minute traded), so the window ends at Friday 21:00; metals open an hour later, at
-- Sunday 22:05, and close with forex. Crypto (BTCUSD, ETHUSD, SOLUSD) trades 24/7. Daylight
-- saving time and the daily metals break are not modelled.
CREATE TABLE instrument_sessions (
    symbol         text NOT NULL REFERENCES instruments (symbol) ON DELETE CASCADE,
    -- ISO weekday (1 Monday .. 7 Sunday) and minute of the day (UTC) it opens at.
    open_weekday   smallint NOT NULL CHECK (open_weekday BETWEEN 1 AND 7),
    open_minute    smallint NOT NULL CHECK (open_minute BETWEEN 0 AND 1439),
    -- ... and closes at (the close itself is outside the window); it may wrap past Sunday.
    close_weekday  smallint NOT NULL CHECK (close_weekday BETWEEN 1 AND 7),
    close_minute   smallint NOT NULL CHECK (close_minute BETWEEN 0 AND 1439),
    PRIMARY KEY (symbol, open_weekday, open_minute)
);

INSERT INTO instrument_sessions (symbol, open_weekday, open_minute, close_weekday, close_minute)
SELECT symbol, 7, CASE category WHEN 'metal' THEN 22 * 60 + 5 ELSE 21 * 60 + 5 END, 5, 21 * 60
FROM instruments WHERE category IN ('forex', 'metal');
