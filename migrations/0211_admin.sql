-- Operators' actions (exness.admin.v1.TradingAdminService).

-- Why the operators force-closed a position (close_reason 5 = OPERATOR), on its trade.
ALTER TABLE trading_trades
    ADD COLUMN close_note text NOT NULL DEFAULT '',
    DROP CONSTRAINT trading_trades_close_reason_check,
    ADD CONSTRAINT trading_trades_close_reason_check CHECK (close_reason BETWEEN 1 AND 5);

-- Instruments halted by the operators: new orders on them are refused until resumed. Kept
-- here so a halt survives an engine restart.
CREATE TABLE trading_halts (
    symbol     text PRIMARY KEY,
    reason     text NOT NULL,
    halted_at  timestamptz NOT NULL DEFAULT now()
);
