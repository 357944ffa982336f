"""Measured what-ifs: monkeypatches of flower_assets, applied inside the backfill process only.

Each prototype stands for one change the package could make, so that its effect can be
measured before anyone writes it: `backfill.py --prototype NAME [--prototype NAME …]`.
They wrap package internals that may move; they are for diagnosis, never for production.
"""

from __future__ import annotations

from collections.abc import Callable


def one_page_per_day() -> None:
    """Ask for a page large enough for any day, so a day costs one call per category.

    Stands for: raise `AtApiResource.page_size` (countPerPage) from 5,000 to e.g. 1,000,000.
    The API applies no cap and documents that walking several pages repeats and skips rows.
    """
    from flower_assets.defs.resources import AtApiResource
    from flower_assets.source.client import AtFlowerClient

    client = AtApiResource.client

    def patched(self: AtApiResource) -> AtFlowerClient:
        made = client(self)
        made.page_size = 1_000_000
        return made

    AtApiResource.client = patched


PROTOTYPES: dict[str, Callable[[], None]] = {
    "one_page_per_day": one_page_per_day,
}
