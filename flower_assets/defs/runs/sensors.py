"""Killed runs recover unattended: the sensor `release_dead_runs`, evaluated by dagster-daemon.

Dagster's run monitoring cannot see the process of a run executed inside a CLI process
(`flower-assets materialize`, `dagster asset materialize`), nor check the workers of its default
run launcher (runs of the daemon and the UI). A killed run would stay "started" and keep its
`flower_api` slot for ever. Every run is tagged with its host and process (flower_assets/cli/
runs.py); every 30 s this sensor marks the runs of its host whose process is gone as failed and
frees their pool slots, whoever launched them. Runs of other hosts are left alone.

Without the daemon nothing frees them. A run that waits for a pool says so through Dagster
("Step blocked by limit for pool flower_api"); `PoolWaitAdvice`, a logging handler that
dagster.yaml gives every run (python_logs), adds for whom it waits and what to do.
"""

from __future__ import annotations

import logging
import re
import sys

import dagster as dg

from flower_assets.cli import runs

INTERVAL_S = 30


@dg.sensor(
    name="release_dead_runs",
    minimum_interval_seconds=INTERVAL_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Every 30 s: a run of this host whose process is gone (kill -9, OOM, crash) is "
    "marked failed and its pool slots (flower_api) are freed, whoever launched it. Runs of other "
    "hosts are left alone.",
)
def release_dead_runs(context: dg.SensorEvaluationContext) -> dg.SkipReason:
    review = runs.review_runs(context.instance, by="the sensor release_dead_runs")
    for line in review.said:
        context.log.warning(line)
    if review.said:
        return dg.SkipReason("; ".join(review.said + review.left_alone))
    if review.left_alone:
        return dg.SkipReason(
            "No run of this host has lost its process. " + "; ".join(review.left_alone)
        )
    return dg.SkipReason("No run of this host has lost its process.")


_BLOCKED = re.compile(r"Step (?:still )?blocked by limit for pool (\S+)")


class PoolWaitAdvice(logging.Handler):
    """Says for whom a run waits when Dagster logs that a step is blocked by a pool's limit.

    Named in dagster.yaml (python_logs.dagster_handler_config), so every run's process has it,
    whoever launched the run: `dagster asset materialize` prints it on stderr, the UI shows it in
    the run's log. Dagster says "Step blocked by limit for pool …" at once, then every 5 minutes.
    """

    def emit(self, record: logging.LogRecord) -> None:
        meta = getattr(record, "dagster_meta", None) or {}
        found = _BLOCKED.match(str(meta.get("orig_message") or record.getMessage()))
        if not found:
            return
        try:
            with dg.DagsterInstance.get() as instance:  # only a persistent instance has pools
                advice = runs.wait_advice(instance, found.group(1), meta.get("run_id"))
                if advice and (run := instance.get_run_by_id(meta.get("run_id") or "")):
                    instance.report_engine_event(advice, run)
        except Exception:  # advice only: never in the way of the run
            return
        if advice:
            print(advice, file=sys.stderr, flush=True)
