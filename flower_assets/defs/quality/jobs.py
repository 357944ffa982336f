"""flower_checks_job: every check judged again for auction dates picked in the UI."""

from flower_assets.defs.auction.checks import (
    BIDDING_JUDGED,
    FLOWER_TYPES_JUDGED,
    FLOWERS_JUDGED,
    RAW_JUDGED,
)
from flower_assets.defs.judging import build_checks_job
from flower_assets.defs.market.checks import (
    ITEM_PRICES_JUDGED,
    PRICE_CHANGES_JUDGED,
    PRICE_INDEX_JUDGED,
)

flower_checks_job = build_checks_job(
    [
        RAW_JUDGED,
        FLOWER_TYPES_JUDGED,
        FLOWERS_JUDGED,
        BIDDING_JUDGED,
        ITEM_PRICES_JUDGED,
        PRICE_CHANGES_JUDGED,
        PRICE_INDEX_JUDGED,
    ]
)
