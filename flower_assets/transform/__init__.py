"""Pure polars steps: raw typing, quarantine, masters, records, corrections, unchanged content."""
