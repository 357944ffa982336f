"""The auction layer's sensors: the freshness checks' (with a service key, whether the latest
auction date arrived), and `history_backfill`, which loads the history within the quota."""

from __future__ import annotations

import json

import dagster as dg

from flower_assets import settings
from flower_assets.defs.auction.checks import freshness_checks
from flower_assets.defs.auction.jobs import flower_auction_job
from flower_assets.defs.dated import BACKFILL_POLICY
from flower_assets.defs.resources import AtApiResource, WarehouseResource
from flower_assets.defs.runs import first_under_way
from flower_assets.source.history import HistoryPlan, plan_history
from flower_assets.warehouse.schemas import RAW

freshness_sensors = (
    [
        dg.build_sensor_for_freshness_checks(
            freshness_checks=freshness_checks, default_status=dg.DefaultSensorStatus.RUNNING
        )
    ]
    if freshness_checks
    else []
)

HISTORY_TAG = "flower/history"


def _progress_event(plan: HistoryPlan) -> dg.AssetObservation:
    """The history's progress on the raw table, as the asset's page shows it (and GraphQL)."""
    return dg.AssetObservation(
        asset_key=RAW.name,
        description=plan.progress(),
        metadata={
            "history_dates_loaded": plan.loaded,
            "history_dates_total": plan.total,
            "quota_days_left": plan.quota_days_left,
            "history_first_date": plan.first.isoformat(),
            "history_last_date": plan.last.isoformat(),
        },
    )


@dg.sensor(
    name="history_backfill",
    job=flower_auction_job,
    minimum_interval_seconds=60,
    # With a key the history fills itself; sample mode has no history to fetch.
    default_status=dg.DefaultSensorStatus.RUNNING
    if settings.is_live()
    else dg.DefaultSensorStatus.STOPPED,
    description="Loads the auction history from FLOWER_START_DATE up to the daily schedule's "
    "correction window, oldest missing dates first, with what each KST day's quota leaves after "
    "FLOWER_HISTORY_RESERVE_CALLS for the daily schedule (4 calls per date not in the raw "
    "response cache). Waits while a flower_auction_job run is under way; stops when the "
    "history is complete and resumes after midnight KST. Stop it here to pause the history.",
)
def history_backfill(
    context: dg.SensorEvaluationContext, at_api: AtApiResource, warehouse: WarehouseResource
) -> dg.SensorResult | dg.SkipReason:
    key = at_api.key
    if at_api.sample_mode or key is None:
        return dg.SkipReason(
            f"sample mode ({settings.api_key.variable} is unset): there is no history to fetch"
        )
    # A run that may call the API: flower_auction_job, or any run that materializes the raw table.
    busy = first_under_way(context.instance, {flower_auction_job.name}, {dg.AssetKey(RAW.name)})
    if busy is not None:
        # Its calls are not all counted yet: today's budget is known once it has ended.
        return dg.SkipReason(f"waiting for run {busy.run_id} of {busy.job_name} to end")
    with warehouse.open() as wh:
        plan = plan_history(
            wh,
            key,
            settings.start_date(),
            at_api.daily_quota,
            settings.history_reserve_calls(),
            at_api.correction_days,
            BACKFILL_POLICY.max_partitions_per_run or 1,
        )
    progress = plan.progress()
    context.log.info(progress)
    shown = json.dumps([plan.loaded, plan.total, plan.quota_days_left])
    # A progress observation only when the numbers move: the sensor ticks every minute.
    events = [] if shown == context.cursor else [_progress_event(plan)]
    if plan.complete:
        why = "history is complete: nothing to load until a date leaves the correction window"
    elif not plan.runs:
        why = "today's history budget is spent: it resumes after midnight KST"
    else:
        why = None
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                # The calls spent so far make a run failed today requestable again once more
                # calls are counted, and a repeated evaluation before its run starts a duplicate.
                run_key=f"history:{first}:{last}@{plan.today}+{plan.spent_today}",
                tags={
                    "dagster/asset_partition_range_start": first.isoformat(),
                    "dagster/asset_partition_range_end": last.isoformat(),
                    "flower/trigger": "history",
                    HISTORY_TAG: progress,
                },
            )
            for first, last in plan.runs
        ],
        skip_reason=f"{progress}: {why}" if why else None,
        cursor=shown,
        asset_events=events,
    )
