"""Sample mode: the sample period's days, the synthetic market behind them, a fake aT server."""
