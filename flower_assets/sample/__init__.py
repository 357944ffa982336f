"""Sample mode: the bundled sample days, the synthetic market behind them, a fake aT server."""
