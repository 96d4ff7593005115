-- Trailing stops: the distance (price units) a position's stop-loss follows the close price
-- at, only ever in the position's favour; on an order, the distance its position gets. NULL:
-- none. The stop-loss column holds where it has moved to, so a restart resumes from there.
ALTER TABLE trading_positions ADD COLUMN trailing_stop numeric CHECK (trailing_stop > 0);
ALTER TABLE trading_orders ADD COLUMN trailing_stop numeric CHECK (trailing_stop > 0);
