"""Per-auction-date materializations shared by the auction and market layers.

Each layer's multi-asset handles a range of auction dates in one run; each date is computed,
written and committed on its own, then recorded as the date's own materialization with the
data version of its content, so a ranged run and a single-date run look the same in the UI.
"""

from collections.abc import Iterator
from datetime import date

import dagster as dg

from flower_assets import settings
from flower_assets.defs.columns import definition_metadata
from flower_assets.defs.judging import latest_materialization_records
from flower_assets.steps.report import (
    LOAD_FAILED,
    NO_AUCTION,
    DateReport,
    Link,
    Markdown,
    no_auction,
)
from flower_assets.warehouse.database import Warehouse
from flower_assets.warehouse.schemas import (
    RAW,
    Table,
)

# A backfill runs this many auction dates per run: few runs (little overhead), small blast radius.
BACKFILL_POLICY = dg.BackfillPolicy.multi_run(max_partitions_per_run=100)
# Bump when an asset's transformation changes: Dagster then shows the asset as unsynced. Each
# auction date's data version is a digest of its stored content (`materialized`), the same in
# single-date and ranged runs: an unchanged re-run, of any assets, leaves nothing unsynced.
CODE_VERSION = "2"


def table_spec(
    table: Table, group: str, description: str, deps: list[str | dg.AssetDep]
) -> dg.AssetSpec:
    """A warehouse table as an asset of `group`, with its columns' metadata."""
    return dg.AssetSpec(
        table.name,
        group_name=group,
        description=description,
        metadata=definition_metadata(table),
        kinds={"polars", "sql"},
        code_version=CODE_VERSION,
        deps=deps,
    )


def explained(wh: Warehouse, asset: str, day: date, report: DateReport) -> DateReport:
    """A date's report whose zeros say why: no auction that day, and the latest that had one."""
    if report.metadata.get("dagster/row_count") != 0 or LOAD_FAILED in report.metadata:
        return report
    if wh.holds_rows(RAW, day):
        return report  # an auction whose rows were all held back: the report says by what
    said: dict[str, object] = {NO_AUCTION: no_auction(day)}
    if (latest := wh.latest_auction_before(day)) is not None:
        said["latest_auction_date"] = Link(
            f"{settings.ui_base_url()}/assets/{asset}?view=partitions&partition={latest}"
        )
    return DateReport({**said, **report.metadata}, report.messages)


def record(
    context: dg.AssetExecutionContext,
    day: date,
    report: DateReport,
    asset_key: dg.AssetKey,
) -> dict[str, object]:
    """A date's report as that date's materialization metadata and log lines."""
    for level, message in report.messages:
        getattr(context.log, level)(message)
    metadata = {name: _metadata_value(value) for name, value in report.metadata.items()}
    context.add_asset_metadata(metadata, asset_key=asset_key, partition_key=day.isoformat())
    return metadata


def _metadata_value(value: object) -> object:
    if isinstance(value, Markdown):
        return dg.MetadataValue.md(value)
    if isinstance(value, Link):
        return dg.MetadataValue.url(value)
    return value


# Dagster's tags of a materialization's data version and provenance, as its event log stores
# them and the public `dg.DataProvenance.from_tags` reads them back (the staleness they give is
# tested through GraphQL in test_ui_materialize.py).
_DATA_VERSION_TAG = "dagster/data_version"
_USER_PROVIDED_TAG = "dagster/data_version_is_user_provided"
_CODE_VERSION_TAG = "dagster/code_version"
_INPUT_VERSION_TAG = "dagster/input_data_version"
_INPUT_POINTER_TAG = "dagster/input_event_pointer"


def content_version_tags(
    code_version: str,
    version: str,
    inputs: dict[dg.AssetKey, dg.EventLogRecord | None],
) -> dict[str, str]:
    """A date's data version with its provenance: each input's version and event of that date."""
    tags = {
        _CODE_VERSION_TAG: code_version,
        _DATA_VERSION_TAG: version,
        _USER_PROVIDED_TAG: "true",
    }
    for key, record in sorted(inputs.items(), key=lambda item: item[0].to_user_string()):
        event = record.asset_materialization if record is not None else None
        name = key.to_user_string()
        version = (event.tags or {}).get(_DATA_VERSION_TAG) if event else None
        tags[f"{_INPUT_VERSION_TAG}/{name}"] = version or "INITIAL"
        tags[f"{_INPUT_POINTER_TAG}/{name}"] = str(record.storage_id) if record else "NULL"
    return tags


def dated_materializations(
    context: dg.AssetExecutionContext,
    key: dg.AssetKey,
    run_metadata: dict[str, object],
    recorded: dict[date, dict[str, object]],
    versions: dict[date, str],
) -> Iterator[dg.AssetMaterialization]:
    """Each date of a table once more, as its latest materialization, with the data version of
    its content (`steps.versions`), after the run's result.

    A data version on a `MaterializeResult` would apply to every date of a ranged run, and the
    one Dagster computes depends on the run's range: a single-date run of an unchanged date (the
    UI's Materialize) gave it a new version, and everything downstream showed stale. Each date's
    own materialization carries its own version, so an unchanged date keeps its version, whatever
    the run's range or asset selection; a real change still gives it a new one. Its provenance
    points at each input's latest materialization of the same date, as Dagster's would.
    """
    spec = context.assets_def.get_asset_spec(key)
    partitions = [day.isoformat() for day in recorded]
    inputs = {
        dep.asset_key: latest_materialization_records(context.instance, dep.asset_key, partitions)
        for dep in spec.deps
    }
    for day, metadata in recorded.items():
        partition = day.isoformat()
        yield dg.AssetMaterialization(
            asset_key=key,
            partition=partition,
            metadata={**run_metadata, **metadata},
            tags=content_version_tags(
                spec.code_version or CODE_VERSION,
                versions[day],
                {dep: records.get(partition) for dep, records in inputs.items()},
            ),
        )
