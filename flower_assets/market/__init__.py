"""The market layer: price tables, the category price index and the market report."""
