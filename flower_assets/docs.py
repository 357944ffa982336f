"""The pages of docs/ that are generated from the code's single declarations.

`uv run python -m flower_assets.docs` writes them; `--check` exits 1 naming each page that
differs from what the code generates (flower_assets_tests/test_docs.py runs it in CI).
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


# Repository path -> what writes it.
GENERATED: dict[str, Callable[[], str]] = {
    "docs/checks.md": _checks_page,
    "docs/settings.md": _settings_page,
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
