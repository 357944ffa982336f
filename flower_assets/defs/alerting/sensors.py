"""Sensors: alerts for failed asset checks and failed runs, each delivered exactly once.

Dagster OSS does not alert on failed asset checks (they do not fail the run), so `flower_alerts`
follows one ordered stream behind its cursor: finished runs (success, failure or cancellation,
read with `fetch_run_status_changes` and merged in storage order). When a run finishes it reads
all of the run's check evaluations on our assets and sends one message per (asset, check) that
failed, naming every failed auction date, plus one message if the run of ours itself failed
(composed in `alerts.py`). A run's evaluations are all stored before its outcome, so nothing of
a run is missed by waiting for its end; failed checks arrive when their run finishes.

Check evaluations stored without a run (reported from outside any run) are not alerted.

Exactly once: the cursor moves past a run only when all of its messages arrived, and records
which of the current run's messages did, so a failed delivery is retried on the next tick
without repeating the others. Each tick stops starting deliveries after a budget well below
Dagster's sensor timeout, after which the tick (and every cursor update made in it) would be lost.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import dagster as dg
from pydantic import Field

from flower_assets import settings
from flower_assets.defs.alerting.alerts import (
    Alert,
    AlertCursor,
    CheckOutcome,
    DeliveryFailed,
    alerts_for_run,
    error_text,
    post,
    run_failure_alert,
    run_partitions,
)
from flower_assets.defs.auction.assets import flower_auction_assets
from flower_assets.defs.auction.jobs import flower_auction_job
from flower_assets.defs.market.assets import flower_market
from flower_assets.defs.market.jobs import flower_market_job

RUN_OUTCOMES = (
    dg.DagsterEventType.RUN_SUCCESS,
    dg.DagsterEventType.RUN_FAILURE,
    dg.DagsterEventType.RUN_CANCELED,
)
# Run outcomes per query and type; check evaluations per query are ten times as many.
PAGE_SIZE = 100

# Dagster gives a sensor tick 60 s by default (`_DEFAULT_GRPC_TIMEOUT_IF_NO_ENV_VAR_SET = 60` in
# dagster/_grpc/utils.py, used by `default_sensor_grpc_timeout()` unless
# DAGSTER_SENSOR_GRPC_TIMEOUT_SECONDS is set; see `external_sensor_execution` in
# dagster/_grpc/client.py), and a tick that times out loses its cursor. Worst case here: the
# 20 s budget, plus one attempt already under way when it runs out (≤ ~3 × 5 s: connect, send,
# read), plus reading the next run's evaluations: well under 60 s.
DELIVERY_BUDGET_S = 20.0
POST_TIMEOUT_S = 5.0


class AlertResource(dg.ConfigurableResource):
    webhook_url: str | None = Field(
        default=settings.alert_webhook_url.default,
        description=f"{settings.alert_webhook_url.meaning} Unset: the sensor's log only "
        f"({settings.alert_webhook_url.variable})",
    )
    ui_base_url: str = Field(
        default=settings.ui_base_url.default,
        description=f"{settings.ui_base_url.meaning} ({settings.ui_base_url.variable})",
    )
    attempts: int = Field(default=3, description="Delivery attempts per alert within one tick")
    timeout_s: float = Field(default=POST_TIMEOUT_S, description="HTTP timeout per attempt")
    backoff_s: float = Field(default=1.0, description="Pause before the 2nd attempt, doubling")
    delivery_budget_s: float = Field(
        default=DELIVERY_BUDGET_S,
        description="Seconds after which a tick starts no further delivery (at least one "
        "message per tick is always attempted); the next tick continues",
    )


def finished_runs(
    instance: dg.DagsterInstance, after: int, page_size: int = PAGE_SIZE
) -> Iterator[dg.EventLogRecord]:
    """Run outcomes stored after `after`, in storage order, across all outcome types.

    One query per type and round. A page that came back full vouches only for ids up to its
    last one, so records of other types past that id wait for the next round: none is skipped.
    """
    while True:
        records: list[dg.EventLogRecord] = []
        bound: int | None = None
        for event_type in RUN_OUTCOMES:
            page = instance.fetch_run_status_changes(
                dg.RunStatusChangeRecordsFilter(event_type, after_storage_id=after),
                limit=page_size,
                ascending=True,
            )
            records += page.records
            if page.has_more:
                last = page.records[-1].storage_id
                bound = last if bound is None else min(bound, last)
        records = sorted(
            (r for r in records if bound is None or r.storage_id <= bound),
            key=lambda r: r.storage_id,
        )
        yield from records
        if bound is None or not records:
            return
        after = records[-1].storage_id


def check_outcomes(
    instance: dg.DagsterInstance,
    run_id: str,
    asset_keys: set[dg.AssetKey],
    page_size: int = PAGE_SIZE * 10,
) -> list[CheckOutcome]:
    """Every check evaluation of the run on our assets, in storage order, read page by page."""
    outcomes: list[CheckOutcome] = []
    cursor = None
    while True:
        page = instance.get_records_for_run(
            run_id,
            cursor=cursor,
            of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION,
            limit=page_size,
        )
        for record in page.records:
            evaluation = record.event_log_entry.dagster_event.event_specific_data
            if evaluation.asset_key in asset_keys:
                outcomes.append(
                    CheckOutcome(
                        asset=evaluation.asset_key.to_user_string(),
                        check=evaluation.check_name,
                        partition=evaluation.partition,
                        passed=evaluation.passed,
                        severity=evaluation.severity.value,
                        description=evaluation.description or "",
                    )
                )
        if not page.has_more:
            return outcomes
        cursor = page.cursor


PLANNED = {
    dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED,
    dg.DagsterEventType.ASSET_CHECK_EVALUATION_PLANNED,
}


def _is_ours(
    instance: dg.DagsterInstance,
    run: dg.DagsterRun,
    asset_keys: set[dg.AssetKey],
    jobs: set[str],
    outcomes: list[CheckOutcome],
    page_size: int = PAGE_SIZE * 10,
) -> bool:
    """A run of our jobs, or of any job that evaluated, selected or planned our assets or checks.

    The cheap answers first; only then the run's planned materializations and check
    evaluations, page by page until one of ours shows up.
    """
    if run.job_name in jobs or outcomes or (run.asset_selection or set()) & asset_keys:
        return True
    if {key.asset_key for key in run.asset_check_selection or ()} & asset_keys:
        return True
    cursor = None
    while True:
        page = instance.get_records_for_run(
            run.run_id, cursor=cursor, of_type=PLANNED, limit=page_size
        )
        for record in page.records:
            data = record.event_log_entry.dagster_event.event_specific_data
            if getattr(data, "asset_key", None) in asset_keys:
                return True
        if not page.has_more:
            return False
        cursor = page.cursor


def run_alerts(
    instance: dg.DagsterInstance,
    outcome: dg.EventLogRecord,
    asset_keys: set[dg.AssetKey],
    jobs: set[str],
    page_size: int = PAGE_SIZE,
) -> list[Alert]:
    """The messages one finished run produces, in delivery order."""
    run_id = outcome.run_id
    outcomes = check_outcomes(instance, run_id, asset_keys, page_size * 10)
    failure = None
    event = outcome.event_log_entry.dagster_event
    if event.event_type == dg.DagsterEventType.RUN_FAILURE:
        run = instance.get_run_by_id(run_id)
        if run is not None and _is_ours(instance, run, asset_keys, jobs, outcomes, page_size * 10):
            error = error_text(event.message or "", _error_chain(event.event_specific_data))
            failure = run_failure_alert(run.job_name, run_partitions(run.tags), error, run_id)
    return alerts_for_run(run_id, outcomes, failure)


def _error_chain(failure_data: object, limit: int = 5) -> list[str]:
    """The messages of the run's error and of the errors that caused it (stack traces left out)."""
    messages = []
    error = getattr(failure_data, "error", None)
    while error is not None and len(messages) < limit:
        messages.append(error.message)
        error = error.cause or error.context
    return messages


class _Tick:
    """One tick's delivery: the budget, the cursor as far as delivered, and what was sent."""

    def __init__(
        self, context: dg.SensorEvaluationContext, alerts: AlertResource, cursor: AlertCursor
    ):
        self.context = context
        self.alerts = alerts
        self.cursor = cursor
        self.deadline = time.monotonic() + alerts.delivery_budget_s
        self.moved = False  # the cursor moved in this tick: the next tick will not start over
        self.sent = 0

    def out_of_time(self) -> bool:
        # A tick that has not moved yet may always go on: every tick makes progress.
        return self.moved and time.monotonic() >= self.deadline

    def deliver_run(self, record: dg.EventLogRecord, alerts: list[Alert]) -> bool:
        """Send the run's messages not yet delivered; True when all of them have been."""
        done = self.cursor.sent_for(record.storage_id)
        for alert in alerts:
            if alert.key in done:
                continue
            if self.out_of_time():
                return False
            self._send(alert)
            self._move(self.cursor.delivered(record.storage_id, alert.key))
            self.sent += 1
        self._move(self.cursor.finished(record.storage_id))
        return True

    def _send(self, alert: Alert) -> None:
        payload = alert.payload(self.alerts.ui_base_url, settings.api_key())
        if not self.alerts.webhook_url:
            self.context.log.warning(f"alert (FLOWER_ALERT_WEBHOOK_URL unset): {payload['text']}")
            return
        post(
            self.alerts.webhook_url,
            payload,
            attempts=self.alerts.attempts,
            timeout_s=self.alerts.timeout_s,
            backoff_s=self.alerts.backoff_s,
            deadline=self.deadline,
        )

    def _move(self, cursor: AlertCursor) -> None:
        self.cursor = cursor
        self.context.update_cursor(cursor.dump())
        self.moved = True


def build_alert_sensor(
    asset_keys: set[dg.AssetKey], jobs: set[str], page_size: int = PAGE_SIZE
) -> dg.SensorDefinition:
    @dg.sensor(
        name="flower_alerts",
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Posts one message per failed check (per run and check, naming its failed "
        "auction dates) and per failed run of flower-assets to FLOWER_ALERT_WEBHOOK_URL.",
    )
    def flower_alerts(context: dg.SensorEvaluationContext, alerts: AlertResource) -> dg.SkipReason:
        instance = context.instance
        if instance.event_log_storage.is_run_sharded:
            return dg.SkipReason(
                "alerts need one consolidated event log: use the repo's dagster.yaml or "
                "deploy/postgres/dagster.yaml (a per-run SQLite event log cannot be read with one cursor)"
            )
        if context.cursor is None:
            # First tick: start from now instead of replaying all history.
            now = instance.event_log_storage.get_maximum_record_id() or 0
            context.update_cursor(AlertCursor(after=now).dump())
            return dg.SkipReason("alert sensor started; watching runs that finish from now on")
        tick = _Tick(context, alerts, AlertCursor.parse(context.cursor))
        stopped = "all caught up"
        try:
            for record in finished_runs(instance, tick.cursor.after, page_size):
                if tick.out_of_time() or not tick.deliver_run(
                    record, run_alerts(instance, record, asset_keys, jobs, page_size)
                ):
                    stopped = f"delivery budget of {alerts.delivery_budget_s:g} s spent"
                    break
        except DeliveryFailed as exc:
            stopped = f"alert not delivered, will retry next tick: {exc}"
            context.log.error(stopped)
        except Exception:
            if not tick.sent:
                raise  # nothing was sent: failing the tick repeats nothing
            # Failing the tick now would drop the cursor and send these alerts again.
            context.log.exception(
                "alert sensor stopped; the next tick resumes after the last alert sent"
            )
            stopped = "stopped by an error (see the log)"
        return dg.SkipReason(f"{tick.sent} alerts sent; {stopped}; cursor {tick.cursor.dump()}")

    return flower_alerts


flower_alerts = build_alert_sensor(
    {key for asset in flower_auction_assets for key in asset.keys} | set(flower_market.keys),
    {flower_auction_job.name, flower_market_job.name},
)
