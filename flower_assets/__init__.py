"""flower-assets: the aT Yangjae flower auctions as Dagster assets."""

from flower_assets.definitions import defs

__all__ = ["defs"]
