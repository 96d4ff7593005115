-- One row per quote: a symbol quoted by one source at one instant. The tick writer inserts
-- with ON CONFLICT DO NOTHING, so a quote written a second time (the writer reading a log
-- again after the embedded broker replaced it, which once stored 13,000-21,000 ticks twice)
-- changes nothing. Duplicates already stored are removed first, keeping the first copy.
DELETE FROM ticks AS later
    USING ticks AS first
    WHERE later.symbol = first.symbol
      AND later.time = first.time
      AND later.source = first.source
      AND later.ctid > first.ctid;

-- Also serves "newest tick of a symbol" (a backward scan), so the old index goes.
CREATE UNIQUE INDEX ticks_quote_key ON ticks (symbol, time, source);
DROP INDEX ticks_symbol_time;
