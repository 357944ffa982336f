"""The pages of docs/ that are generated from the code's single declarations.

`uv run python -m flower_assets.docs` writes them; `--check` exits 1 naming each page that
differs from what the code generates (flower_assets_tests/test_docs.py runs it in CI).
- docs/checks.md: the checks, from their declarations (flower_assets.quality.catalog);
- docs/settings.md: the settings, from their typed model (flower_assets.settings);
- docs/tables.md: the warehouse tables and columns, from their pandera models
  (flower_assets.warehouse.schemas), the same descriptions the UI's Columns tab shows.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _checks_page() -> str:
    from flower_assets.quality.catalog import checks_page

    return checks_page()


def _settings_page() -> str:
    from flower_assets.settings import settings_page

    return settings_page()


_TABLES_INTRO = """\
# Tables and columns

Generated from the pandera models in `flower_assets/warehouse/schemas.py` by
`uv run python -m flower_assets.docs`; do not edit. The same descriptions fill the Columns tab
of each asset in the Dagster UI. How the tables are kept (per date, in one transaction), what is
quarantined and how corrections are recorded: [operations.md](operations.md); the market
definitions: [market.md](market.md).

Categories (화훼부류, `flower_gubn`): 절화 cut flowers, 관엽 foliage plants, 난 orchids, 춘란
Korean spring orchids. Item is 품목 (`pumName`), variety 품종 (`goodName`), grade 등급 (`lvNm`).
Amounts are won; quantities are bundles (속) for cut flowers and pots (분) for plants. Names and
grades in the masters and records are in canonical form (`flower_assets/transform/names.py`:
Unicode NFC, no zero-width characters, trimmed); the raw table keeps them as received.
"""

# The page's sections: title -> the tables it holds, in the order of TABLES otherwise.
_TABLE_GROUPS = {
    "Auction layer": (
        "public_bidding_flowers",
        "flower_types",
        "flowers",
        "bidding_flowers",
        "rejected_bidding_flowers",
        "auction_corrections",
    ),
    "Market layer": ("daily_item_prices", "variety_price_changes", "category_price_index"),
}


def _type_name(dtype: object) -> str:
    text = str(dtype)
    return "Datetime (UTC)" if text.startswith("Datetime") else text


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def tables_page() -> str:
    """docs/tables.md: every warehouse table, its keys and its columns, from schemas.py."""
    from flower_assets.warehouse.schemas import TABLES

    grouped = {name for names in _TABLE_GROUPS.values() for name in names}
    groups = {title: list(names) for title, names in _TABLE_GROUPS.items()}
    groups["Bookkeeping"] = [t.name for t in TABLES if t.name not in grouped]
    by_name = {t.name: t for t in TABLES}
    lines = [_TABLES_INTRO]
    lines.append("| table | what it holds |")
    lines.append("| --- | --- |")
    for names in groups.values():
        for name in names:
            summary = _cell((by_name[name].model.__doc__ or "").strip().split("\n\n")[0])
            lines.append(f"| [`{name}`](#{name}) | {summary} |")
    for title, names in groups.items():
        lines.append(f"\n## {title}")
        for name in names:
            table = by_name[name]
            meta = table.meta
            lines.append(f"\n### {name}\n")
            lines.append(" ".join((table.model.__doc__ or "").split()))
            keys = []
            if "primary_key" in meta:
                keys.append(f"primary key `{meta['primary_key']}`")
            for unique in meta.get("unique", []):
                keys.append(f"unique `({', '.join(unique)})`")
            for column, target in meta.get("foreign_keys", {}).items():
                keys.append(f"`{column}` → `{target}.id`")
            if "partition_column" in meta:
                keys.append(f"rewritten one `{meta['partition_column']}` at a time")
            if keys:
                text = "; ".join(keys)
                lines.append("\n" + text[0].upper() + text[1:] + ".")
            lines.append("\n| column | type | description |")
            lines.append("| --- | --- | --- |")
            for column, spec in table.schema.columns.items():
                kind = _type_name(spec.dtype) + (", null" if spec.nullable else "")
                lines.append(f"| `{column}` | {kind} | {_cell(spec.description or '')} |")
    return "\n".join(lines) + "\n"


# Repository path -> what writes it.
GENERATED: dict[str, Callable[[], str]] = {
    "docs/checks.md": _checks_page,
    "docs/settings.md": _settings_page,
    "docs/tables.md": tables_page,
}


def stale_pages(root: Path = ROOT) -> list[str]:
    """The generated pages whose committed text differs from what the code generates."""
    return [
        page
        for page, generate in GENERATED.items()
        if not (root / page).is_file() or (root / page).read_text(encoding="utf-8") != generate()
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flower_assets.docs", description=__doc__)
    parser.add_argument("--check", action="store_true", help="only report stale pages")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_pages()
        for page in stale:
            print(f"{page} is stale: run `uv run python -m flower_assets.docs`", file=sys.stderr)
        return 1 if stale else 0
    for page, generate in GENERATED.items():
        (ROOT / page).write_text(generate(), encoding="utf-8")
        print(f"wrote {page}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
