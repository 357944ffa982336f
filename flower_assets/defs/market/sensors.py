"""The market tables follow the auction records: the market and report sensors."""

from __future__ import annotations

import dagster as dg

from flower_assets.defs.auction.assets import flower_auction_assets
from flower_assets.defs.auction.jobs import flower_auction_job
from flower_assets.defs.dated import BACKFILL_POLICY
from flower_assets.defs.market.assets import flower_market
from flower_assets.defs.market.jobs import flower_market_job, flower_report_job
from flower_assets.defs.market.plan import plan_market
from flower_assets.defs.resources import PriceIndexSettings, WarehouseResource
from flower_assets.defs.runs import first_under_way

# The tables whose runs the market sensor waits for: the auction assets and the market tables.
_WRITTEN = frozenset(
    {key for asset in flower_auction_assets for key in asset.keys} | set(flower_market.keys)
)


def build_market_sensor(
    auction_job: dg.UnresolvedAssetJobDefinition, market_job: dg.UnresolvedAssetJobDefinition
) -> dg.SensorDefinition:
    """Keep every market date built on its current history, whatever changed it."""

    @dg.sensor(
        name="market_after_auctions",
        job=market_job,
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="When auction records changed (any run, any order: a first load of an "
        "earlier date, a correction, a removal) and no run that writes auction or market tables "
        "(flower_auction_job, flower_market_job, a Materialize from the UI) is under way, "
        "builds every stale market date, from the first to the last, in runs of at most 100 "
        "dates.",
    )
    def market_after_auctions(
        context: dg.SensorEvaluationContext,
        warehouse: WarehouseResource,
        price_index: PriceIndexSettings,
    ) -> list[dg.RunRequest] | dg.SkipReason:
        busy = first_under_way(context.instance, {auction_job.name, market_job.name}, _WRITTEN)
        if busy is not None:
            written = sorted(
                key.to_user_string() for key in (busy.asset_selection or frozenset()) & _WRITTEN
            )
            what = ", ".join(written) if written else "auction or market tables"
            return dg.SkipReason(
                f"waiting for run {busy.run_id} of {busy.job_name} (it writes {what}) to end "
                "before building the market tables"
            )
        with warehouse.open() as wh:
            plan = plan_market(
                wh, price_index.base(), [], BACKFILL_POLICY.max_partitions_per_run or 1
            )
        if not plan.runs:
            return dg.SkipReason("every market date is built on its current auction records")
        return [
            dg.RunRequest(
                run_key=f"{plan.state}:{first}",
                tags={
                    "dagster/asset_partition_range_start": first.isoformat(),
                    "dagster/asset_partition_range_end": last.isoformat(),
                },
            )
            for first, last in plan.runs
        ]

    return market_after_auctions


def build_report_sensor(
    market_job: dg.UnresolvedAssetJobDefinition, report_job: dg.UnresolvedAssetJobDefinition
) -> dg.RunStatusSensorDefinition:
    """After each successful market run: write the market report again."""

    @dg.run_status_sensor(
        name="report_after_market",
        run_status=dg.DagsterRunStatus.SUCCESS,
        monitored_jobs=[market_job],
        request_job=report_job,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="After each successful flower_market_job run, writes the market report of "
        "the last year again.",
    )
    def report_after_market(context: dg.RunStatusSensorContext) -> dg.RunRequest:
        return dg.RunRequest(run_key=context.dagster_run.run_id)

    return report_after_market


market_after_auctions = build_market_sensor(flower_auction_job, flower_market_job)
report_after_market = build_report_sensor(flower_market_job, flower_report_job)
