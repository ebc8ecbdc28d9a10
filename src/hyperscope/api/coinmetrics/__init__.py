"""The Coin Metrics API v4 family: funding-rate time series, catalogs and reference data under /v4, in Coin
Metrics' shapes (`../shared/spec/coinmetrics/conventions.md`), read by the official `coinmetrics-api-client`."""
