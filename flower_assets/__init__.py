"""flower-assets: the aT Yangjae flower auctions as Dagster assets."""

# `dagster … -m flower_assets` finds the code location's Definitions here. Not named `defs`:
# that is the sub-package of the Dagster glue (`flower_assets.defs`), which Python binds to the
# same attribute once it is imported.
LOCATION = "location_defs"


def __getattr__(name: str) -> object:
    # Built on first use, so that importing a part of the package (the instance's event log
    # storage in dagster.yaml, say) does not build every definition.
    if name == LOCATION:
        from flower_assets.definitions import defs

        return defs
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    # Dagster finds a module's Definitions through dir(): list them before they are built.
    return [*globals(), LOCATION]


__all__ = [LOCATION]
