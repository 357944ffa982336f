"""Integrity rules: pure functions judging a date's tables, each giving an Outcome."""
