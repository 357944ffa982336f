"""Sensors: alerts for failed asset checks and failed runs, exactly once per event.

Dagster OSS does not alert on failed asset checks (they do not fail the run), so this sensor
reads check evaluations and run failures from the event log after its cursor, posts one
message per event to FLOWER_ALERT_WEBHOOK_URL, and advances the cursor only past delivered ones.
"""

from __future__ import annotations

import dagster as dg
from pydantic import Field

from flower_assets import settings
from flower_assets.alerts import Alert, DeliveryFailed, check_alert, post, run_failure_alert

ALERT_EVENTS = (dg.DagsterEventType.ASSET_CHECK_EVALUATION, dg.DagsterEventType.RUN_FAILURE)


class AlertResource(dg.ConfigurableResource):
    webhook_url: str | None = Field(
        default=None,
        description="Slack-compatible webhook (FLOWER_ALERT_WEBHOOK_URL); unset: log only",
    )
    ui_base_url: str = Field(
        default=settings.DEFAULT_UI_BASE_URL,
        description="Dagster UI address for run links (FLOWER_UI_BASE_URL)",
    )
    attempts: int = Field(default=3, description="Delivery attempts per alert")


def _alert_for(
    instance: dg.DagsterInstance,
    record: dg.EventLogRecord,
    asset_keys: set[dg.AssetKey],
    jobs: set[str],
) -> Alert | None:
    event = record.event_log_entry.dagster_event
    if event.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION:
        evaluation = event.event_specific_data
        if evaluation.passed or evaluation.asset_key not in asset_keys:
            return None
        return check_alert(
            evaluation.asset_key.to_user_string(),
            evaluation.check_name,
            evaluation.partition,
            evaluation.severity.value,
            evaluation.description or "",
            record.run_id,
        )
    run = instance.get_run_by_id(record.run_id)
    if run is None or not _is_ours(instance, run, asset_keys, jobs):
        return None
    tags = run.tags
    partitions = tags.get("dagster/partition") or "…".join(
        filter(
            None,
            (
                tags.get("dagster/asset_partition_range_start"),
                tags.get("dagster/asset_partition_range_end"),
            ),
        )
    )
    error = event.event_specific_data.error
    message = error.to_string() if error else (event.message or "run failed")
    return run_failure_alert(run.job_name, partitions or "-", message, record.run_id)


def _is_ours(
    instance: dg.DagsterInstance, run: dg.DagsterRun, asset_keys: set[dg.AssetKey], jobs: set[str]
) -> bool:
    """A run of our jobs, or of any ad-hoc job that started a step of one of our assets."""
    if run.job_name in jobs or (run.asset_selection or set()) & asset_keys:
        return True
    steps = {
        event.step_key
        for event in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_START)
    }
    return bool(steps & {key.to_user_string() for key in asset_keys})


def build_alert_sensor(asset_keys: set[dg.AssetKey], jobs: set[str]) -> dg.SensorDefinition:
    @dg.sensor(
        name="flower_alerts",
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Posts one message per failed asset check or failed run of flower-assets to FLOWER_ALERT_WEBHOOK_URL.",
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
            context.update_cursor(str(instance.event_log_storage.get_maximum_record_id() or 0))
            return dg.SkipReason("alert sensor started; watching events from now on")
        cursor = int(context.cursor)
        records = sorted(
            (
                record
                for event_type in ALERT_EVENTS
                for record in instance.get_event_records(
                    dg.EventRecordsFilter(event_type=event_type, after_cursor=cursor),
                    limit=200,
                    ascending=True,
                )
            ),
            key=lambda record: record.storage_id,
        )
        sent = 0
        for record in records:
            alert = _alert_for(instance, record, asset_keys, jobs)
            if alert is not None:
                payload = alert.payload(alerts.ui_base_url, settings.env(settings.API_KEY_ENV))
                if alerts.webhook_url:
                    try:
                        post(alerts.webhook_url, payload, attempts=alerts.attempts)
                    except DeliveryFailed as exc:
                        # Keep the cursor before this event: the next tick tries it again.
                        context.log.error(f"alert not delivered, will retry next tick: {exc}")
                        break
                else:
                    context.log.warning(
                        f"alert (FLOWER_ALERT_WEBHOOK_URL unset): {payload['text']}"
                    )
                sent += 1
            cursor = record.storage_id
            context.update_cursor(str(cursor))
        return dg.SkipReason(f"{sent} alerts sent; cursor at event {cursor}")

    return flower_alerts
