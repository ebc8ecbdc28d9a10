-- hyperscope store schema, version 7. Written in the subset DuckDB and PostgreSQL both run.
-- Every time is BIGINT epoch milliseconds (UTC).

CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL);

CREATE TABLE IF NOT EXISTS state_updates (
    height BIGINT PRIMARY KEY,
    time BIGINT NOT NULL,
    source VARCHAR NOT NULL,
    positions INTEGER NOT NULL,
    wallets INTEGER NOT NULL,
    opened INTEGER NOT NULL,
    closed INTEGER NOT NULL,
    liquidations INTEGER NOT NULL,
    ingested_at BIGINT NOT NULL,
    ingest_seconds DOUBLE PRECISION NOT NULL,
    thinned BOOLEAN DEFAULT false, -- retention kept this update's metric rows past full resolution
    has_orders BOOLEAN DEFAULT false, -- this update carried every open order (an order snapshot)
    market_data VARCHAR DEFAULT '' -- where its marks came from (recorded, fetched at its time, oracle prices)
);

CREATE TABLE IF NOT EXISTS markets (
    height BIGINT NOT NULL, time BIGINT NOT NULL, coin VARCHAR NOT NULL, dex VARCHAR NOT NULL,
    mark_px DOUBLE PRECISION, oracle_px DOUBLE PRECISION, mid_px DOUBLE PRECISION,
    funding DOUBLE PRECISION, premium DOUBLE PRECISION, open_interest DOUBLE PRECISION,
    day_ntl_vlm DOUBLE PRECISION, sz_decimals INTEGER, max_leverage INTEGER
);

CREATE TABLE IF NOT EXISTS coins (
    coin VARCHAR PRIMARY KEY, coin_lower VARCHAR NOT NULL, dex VARCHAR NOT NULL, last_height BIGINT NOT NULL
);

-- Open positions are split so that each state update rewrites only numbers: the identity of a lifecycle
-- (strings that never change while it is open) is written once when it opens and removed when it closes.
-- `wallet` is the address's first 60 bits as an integer (addresses are hashes, so it is as good as unique):
-- filtering lifecycles by wallet scans one integer column, not millions of 42-character strings.
CREATE TABLE IF NOT EXISTS lifecycles (
    key BIGINT NOT NULL, id VARCHAR NOT NULL, address VARCHAR NOT NULL, coin VARCHAR NOT NULL,
    dex VARCHAR NOT NULL, side VARCHAR NOT NULL, leverage_type VARCHAR NOT NULL, open_time BIGINT NOT NULL,
    created_at BIGINT NOT NULL, wallet BIGINT
);

CREATE TABLE IF NOT EXISTS open_states (
    key BIGINT NOT NULL, size DOUBLE PRECISION, entry_px DOUBLE PRECISION, mark_px DOUBLE PRECISION,
    value DOUBLE PRECISION, unrealized_pnl DOUBLE PRECISION, funding DOUBLE PRECISION,
    liquidation_px DOUBLE PRECISION, liquidation_progress DOUBLE PRECISION, leverage DOUBLE PRECISION,
    margin_used DOUBLE PRECISION, updated_at BIGINT NOT NULL, height BIGINT NOT NULL,
    size_segment SMALLINT, pnl_segment SMALLINT, size_bucket SMALLINT
);

CREATE OR REPLACE VIEW positions_open AS
SELECT l.key, l.id, l.address, l.coin, l.dex, l.side, s.size, s.entry_px, s.mark_px, s.value, s.unrealized_pnl,
       s.funding, s.liquidation_px, s.liquidation_progress, l.leverage_type, s.leverage, s.margin_used,
       l.open_time, CAST(NULL AS BIGINT) AS close_time, l.created_at, s.updated_at, s.height, s.size_segment,
       s.pnl_segment, s.size_bucket, l.wallet
FROM lifecycles l JOIN open_states s ON s.key = l.key;

CREATE TABLE IF NOT EXISTS positions_closed (
    key BIGINT NOT NULL, id VARCHAR NOT NULL, address VARCHAR NOT NULL, coin VARCHAR NOT NULL, dex VARCHAR NOT NULL,
    side VARCHAR NOT NULL, size DOUBLE PRECISION, entry_px DOUBLE PRECISION, mark_px DOUBLE PRECISION,
    value DOUBLE PRECISION, unrealized_pnl DOUBLE PRECISION, funding DOUBLE PRECISION,
    liquidation_px DOUBLE PRECISION, liquidation_progress DOUBLE PRECISION, leverage_type VARCHAR,
    leverage DOUBLE PRECISION, margin_used DOUBLE PRECISION, open_time BIGINT NOT NULL, close_time BIGINT,
    created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL, height BIGINT NOT NULL,
    size_segment SMALLINT, pnl_segment SMALLINT, size_bucket SMALLINT,
    mid_px DOUBLE PRECISION, premium DOUBLE PRECISION, sz_decimals INTEGER, max_leverage INTEGER, wallet BIGINT
);

CREATE TABLE IF NOT EXISTS wallets (
    address VARCHAR NOT NULL, total_equity DOUBLE PRECISION, perp_equity DOUBLE PRECISION,
    spot_equity DOUBLE PRECISION, staking_equity DOUBLE PRECISION, vault_equity DOUBLE PRECISION,
    balance DOUBLE PRECISION, pnl DOUBLE PRECISION, volume DOUBLE PRECISION, count_open_positions INTEGER,
    size_segment SMALLINT, pnl_segment SMALLINT, height BIGINT NOT NULL, updated_at BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS fills (
    height BIGINT NOT NULL, address VARCHAR NOT NULL, coin VARCHAR NOT NULL, px DOUBLE PRECISION,
    sz DOUBLE PRECISION, side VARCHAR, time BIGINT NOT NULL, start_position DOUBLE PRECISION, dir VARCHAR,
    closed_pnl DOUBLE PRECISION, fee DOUBLE PRECISION, tid BIGINT, liquidation BOOLEAN
);

CREATE TABLE IF NOT EXISTS metrics_general (
    id BIGINT NOT NULL, height BIGINT NOT NULL, created_at BIGINT NOT NULL,
    count BIGINT, count_long BIGINT, count_short BIGINT, open_interest DOUBLE PRECISION,
    open_interest_long DOUBLE PRECISION, open_interest_short DOUBLE PRECISION,
    perp_equity DOUBLE PRECISION, count_in_profit BIGINT
);

CREATE TABLE IF NOT EXISTS metrics_coin (
    id BIGINT NOT NULL, height BIGINT NOT NULL, created_at BIGINT NOT NULL, coin VARCHAR NOT NULL,
    position_count BIGINT, position_count_long BIGINT, total_position_value DOUBLE PRECISION,
    total_position_value_long DOUBLE PRECISION, total_position_size DOUBLE PRECISION,
    total_position_size_long DOUBLE PRECISION, total_funding DOUBLE PRECISION,
    total_unrealized_pnl DOUBLE PRECISION, count_in_profit BIGINT, value_close_to_liquidation DOUBLE PRECISION
);

CREATE TABLE IF NOT EXISTS metrics_coin_segment (
    id BIGINT NOT NULL, height BIGINT NOT NULL, created_at BIGINT NOT NULL, coin VARCHAR NOT NULL,
    segment_id SMALLINT NOT NULL, timeframe VARCHAR NOT NULL,
    position_count BIGINT, position_count_long BIGINT, total_position_value DOUBLE PRECISION,
    total_position_value_long DOUBLE PRECISION, total_position_size DOUBLE PRECISION,
    total_position_size_long DOUBLE PRECISION, total_funding DOUBLE PRECISION,
    total_unrealized_pnl DOUBLE PRECISION, count_in_profit BIGINT, value_close_to_liquidation DOUBLE PRECISION
);

CREATE TABLE IF NOT EXISTS metrics_coin_bucket (
    id BIGINT NOT NULL, height BIGINT NOT NULL, created_at BIGINT NOT NULL, coin VARCHAR NOT NULL,
    size_bucket SMALLINT NOT NULL,
    position_count BIGINT, position_count_long BIGINT, total_position_value DOUBLE PRECISION,
    total_position_value_long DOUBLE PRECISION, total_position_size DOUBLE PRECISION,
    total_position_size_long DOUBLE PRECISION, total_funding DOUBLE PRECISION,
    total_unrealized_pnl DOUBLE PRECISION, count_in_profit BIGINT, value_close_to_liquidation DOUBLE PRECISION
);

CREATE TABLE IF NOT EXISTS metrics_segment (
    id BIGINT NOT NULL, height BIGINT NOT NULL, created_at BIGINT NOT NULL, segment_id SMALLINT NOT NULL,
    timeframe VARCHAR NOT NULL, position_count BIGINT, position_count_long BIGINT,
    open_value DOUBLE PRECISION, open_long_value DOUBLE PRECISION, open_short_value DOUBLE PRECISION,
    active_perp_equity DOUBLE PRECISION, traders BIGINT
);

CREATE TABLE IF NOT EXISTS metrics_perp_volume (
    id BIGINT NOT NULL, height BIGINT NOT NULL, created_at BIGINT NOT NULL, volume DOUBLE PRECISION
);

CREATE TABLE IF NOT EXISTS metrics_wallets_equity (
    id BIGINT NOT NULL, height BIGINT NOT NULL, created_at BIGINT NOT NULL,
    total DOUBLE PRECISION, perp DOUBLE PRECISION, spot DOUBLE PRECISION, staking DOUBLE PRECISION,
    vault DOUBLE PRECISION
);

-- Each coin's liquidation map (semantics.md section 8) at every state update: its non-empty bins only, bin i
-- covering mark * [0.5 + i/100, 0.5 + (i+1)/100) at that update's mark (markets). A missing bin holds nothing.
CREATE TABLE IF NOT EXISTS metrics_liquidation (
    id BIGINT NOT NULL, height BIGINT NOT NULL, created_at BIGINT NOT NULL, coin VARCHAR NOT NULL,
    bin SMALLINT NOT NULL, liquidation_value DOUBLE PRECISION, position_count BIGINT, most_impacted_segment SMALLINT
);

-- Open orders, stored as spans: one row per order version (oid, size and prices) with the first state update
-- that held it, and, once it is gone, one row in order_ends with the last update that held it (both tables
-- only grow by appends: an update rewriting old rows would make DuckDB rewrite their row groups). The orders at
-- a state update are the spans that cover its height, so a snapshot costs nothing to store beyond changes.
CREATE TABLE IF NOT EXISTS order_spans (
    span BIGINT NOT NULL, oid BIGINT NOT NULL, address VARCHAR NOT NULL, coin VARCHAR NOT NULL, side VARCHAR NOT NULL,
    limit_px DOUBLE PRECISION, sz DOUBLE PRECISION, orig_sz DOUBLE PRECISION, timestamp BIGINT NOT NULL,
    order_type VARCHAR, tif VARCHAR, reduce_only BOOLEAN, is_trigger BOOLEAN, trigger_px DOUBLE PRECISION,
    trigger_condition VARCHAR, is_position_tpsl BOOLEAN, cloid VARCHAR, first_height BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS order_ends (span BIGINT NOT NULL, last_height BIGINT NOT NULL, last_time BIGINT NOT NULL);

-- Each wallet's all-time perp PnL and volume at the first state update of every hour (only wallets whose
-- figures changed since their previous mark, every wallet at the first one of a UTC day): the baselines of
-- the period leaderboards. Past two days only the daily full marks are kept.
CREATE TABLE IF NOT EXISTS wallet_marks (
    time BIGINT NOT NULL, address VARCHAR NOT NULL, pnl DOUBLE PRECISION, volume DOUBLE PRECISION,
    full_mark BOOLEAN NOT NULL, -- every wallet (the first mark of a UTC day), not only the changed ones
    size_segment SMALLINT -- its size cohort (by perp equity) then: the cohort migration chart's baseline
);

-- Hourly funding per market (coin on its dex) and the USD open interest (one side) it settles on, from the
-- first state update of each hour: the input of the Coin Metrics-style funding metrics. A missing hour stays
-- missing.
CREATE TABLE IF NOT EXISTS funding_hourly (
    time BIGINT NOT NULL, coin VARCHAR NOT NULL, dex VARCHAR NOT NULL, rate DOUBLE PRECISION NOT NULL,
    open_interest_usd DOUBLE PRECISION NOT NULL, height BIGINT NOT NULL
);
