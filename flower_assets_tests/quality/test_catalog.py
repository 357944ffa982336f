"""The check declarations: one name per check, numbers only from the rules' constants."""

from __future__ import annotations

import ast
import inspect
import re
import sys

from flower_assets import settings
from flower_assets.quality import catalog, integrity, market

# The names Dagster's instance history, the alerts and the UI know each table's checks by: a
# renamed check starts an empty history and orphans the old one.
NAMES = {
    "public_bidding_flowers": [
        "schema_conforms",
        "rejected_share_within_threshold",
        "no_duplicate_keys",
        "dates_match_partition",
        "expected_auction_day",
    ],
    "flower_types": ["no_lookalike_names", "seen_dates_match_records"],
    "flowers": ["no_lookalike_names", "seen_dates_match_records"],
    "bidding_flowers": [
        "auction_date_loaded",
        "prices_ordered",
        "totals_consistent",
        "reconciles_with_raw",
        "price_anomalies",
    ],
    "daily_item_prices": ["built_on_current_history", "reconciles_with_records"],
    "variety_price_changes": ["built_on_current_history", "covers_every_record"],
    "category_price_index": [
        "built_on_current_history",
        "chain_consistent",
        "links_rest_on_enough_volume",
    ],
}


def test_the_check_names_are_the_ones_history_knows():
    assert {table: [c.name for c in checks] for table, checks in catalog.CHECKS.items()} == NAMES


def test_each_check_is_named_after_its_rule_a_function_of_the_rules_modules():
    for checks in catalog.CHECKS.values():
        for check in checks:
            module = sys.modules[check.rule.__module__]
            assert module in (integrity, market), check
            # The function by that name in its module, not a lambda or a wrapper.
            assert getattr(module, check.name) is check.rule, check.name


def _literal_texts(node: ast.AST) -> list[str]:
    """The text a string or f-string writes itself, format specs (`:.1%`) aside."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.JoinedStr):
        return [text for value in node.values for text in _literal_texts(value)]
    return []


def test_descriptions_and_tolerances_write_no_number_of_their_own():
    """Every number a check's description, tolerance or the checks page shows comes from a
    constant the rule uses (or a setting's default), so it cannot drift from the rule."""
    tree = ast.parse(inspect.getsource(catalog))
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
    }
    inside_format_specs = {
        id(piece)
        for node in ast.walk(tree)
        if isinstance(node, ast.FormattedValue) and node.format_spec is not None
        for piece in ast.walk(node.format_spec)
    }
    written = []
    for node in ast.walk(tree):
        if id(node) in docstrings or id(node) in inside_format_specs:
            continue
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            written += [(node.lineno, text) for text in _literal_texts(node)]
        if isinstance(node, ast.FormattedValue):
            written += [
                (node.lineno, repr(n.value))
                for n in ast.walk(node.value)
                if isinstance(n, ast.Constant) and isinstance(n.value, int | float)
            ]
    numbers = [(line, text) for line, text in written if re.search(r"\d", text)]
    assert not numbers, f"numbers written in catalog.py, not taken from constants: {numbers}"


def test_descriptions_show_the_constants_the_rules_use():
    assert f"{integrity.PRICE_RULE_TOLERATED_SHARE:.1%}" in catalog.PRICES_ORDERED.tolerance
    assert f"{integrity.WEEKDAY_LOOKBACK} same weekdays" in catalog.EXPECTED_AUCTION_DAY.description
    assert f"{market.MIN_MATCHED_QUANTITY_SHARE:.0%}" in (
        catalog.LINKS_REST_ON_ENOUGH_VOLUME.full_description
    )
    share = settings.max_rejected_share
    assert f"{share.variable} of the date's rows (default {share.default:.0%})" in (
        catalog.REJECTED_SHARE_WITHIN_THRESHOLD.tolerance
    )


def test_the_checks_page_has_a_row_per_check_and_table():
    rows = [line for line in catalog.checks_page().splitlines() if line.startswith("| `")]
    assert [tuple(re.findall(r"`(\w+)`", row)[:2]) for row in rows] == [
        (name, table) for table, names in NAMES.items() for name in names
    ]
    assert all(row.count(" | ") == 5 for row in rows), "a text's own | splits its cell"
