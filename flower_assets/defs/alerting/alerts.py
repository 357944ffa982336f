"""Alert messages (Slack-compatible JSON), the alert sensor's cursor, and bounded delivery.

Everything here is pure except `post`: which messages a finished run produces is decided from
plain values (`CheckOutcome`s, the run's tags and error), so it is tested without Dagster.

One finished run produces at most one message per (asset, check) that failed in it, naming
every auction date it failed on, and one message if the run itself failed.
"""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date

import httpx

from flower_assets.source.client import redact

# A message lists at most this many items (a single auction date or a run of consecutive ones);
# the rest is counted. The title always gives the total number of failed dates.
MAX_LISTED_DATES = 50
MAX_DESCRIPTIONS = 3
MAX_DESCRIPTION_CHARS = 300
MAX_ERROR_CHARS = 1500
RUN_FAILURE_KEY = "run failed"
PARTITION_TAG = "dagster/partition"
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


@dataclass(frozen=True)
class Alert:
    """One message worth a person's attention. `key` names it among its run's messages."""

    key: str
    title: str
    fields: dict[str, str]
    run_id: str

    def text(self, ui_base_url: str) -> str:
        lines = [f"*{self.title}*"]
        lines += [f"{name}: {value}" for name, value in self.fields.items() if value]
        lines.append(f"Run: {ui_base_url.rstrip('/')}/runs/{self.run_id}")
        return "\n".join(lines)

    def payload(self, ui_base_url: str, secret: str | None) -> dict[str, str]:
        # The text quotes error messages; the service key must never leave with them.
        return {"text": redact(self.text(ui_base_url), secret)}


@dataclass(frozen=True)
class CheckOutcome:
    """One stored check evaluation, reduced to what an alert says about it."""

    asset: str
    check: str
    partition: str | None
    passed: bool
    severity: str  # "ERROR" or "WARN"
    description: str = ""


def alerts_for_run(
    run_id: str, outcomes: Iterable[CheckOutcome], run_failure: Alert | None = None
) -> list[Alert]:
    """The messages of one finished run, in delivery order: its failure first, then its checks."""
    return ([run_failure] if run_failure else []) + check_alerts(run_id, outcomes)


def check_alerts(run_id: str, outcomes: Iterable[CheckOutcome]) -> list[Alert]:
    """One message per (asset, check) that failed in the run, sorted by asset and check.

    `outcomes` come in storage order; when a check was evaluated more than once for the same
    auction date in one run (a retried step), the latest evaluation decides.
    """
    latest: dict[tuple[str, str, str | None], CheckOutcome] = {}
    for outcome in outcomes:
        latest[(outcome.asset, outcome.check, outcome.partition)] = outcome
    failed: dict[tuple[str, str], list[CheckOutcome]] = defaultdict(list)
    for (asset, check, _), outcome in latest.items():
        if not outcome.passed:
            failed[(asset, check)].append(outcome)
    return [
        _check_alert(run_id, asset, check, failures)
        for (asset, check), failures in sorted(failed.items())
    ]


def _check_alert(run_id: str, asset: str, check: str, failures: list[CheckOutcome]) -> Alert:
    dated = sorted((f for f in failures if f.partition is not None), key=lambda f: f.partition)
    undated = [f for f in failures if f.partition is None]
    dates = [f.partition for f in dated if f.partition is not None]
    severities = Counter(f.severity for f in failures)
    title = f"flower-assets: check {check} failed on {asset}"
    if dates:
        title += f" for {len(dates)} auction date{'s' if len(dates) != 1 else ''}"
    if set(severities) == {"WARN"}:
        title += " (WARN)"
    fields = {"Asset": asset, "Check": check, "Severity": _severity(severities)}
    if dates:
        fields["Auction dates"] = list_dates(dates)
        if undated:
            fields["Also failed without an auction date"] = f"{len(undated)} evaluation(s)"
    fields["What"] = _descriptions(dated + undated)
    return Alert(key=f"check {asset} {check}", title=title, fields=fields, run_id=run_id)


def _severity(severities: Counter[str]) -> str:
    if len(severities) == 1:
        return next(iter(severities))
    return ", ".join(f"{name} on {count}" for name, count in sorted(severities.items()))


def _descriptions(failures: list[CheckOutcome]) -> str:
    """Up to MAX_DESCRIPTIONS distinct descriptions, each with its auction date when there are several."""
    seen: dict[str, str | None] = {}
    for failure in failures:
        if failure.description and failure.description not in seen:
            seen[failure.description] = failure.partition
    shown = []
    for description, partition in list(seen.items())[:MAX_DESCRIPTIONS]:
        text = description[:MAX_DESCRIPTION_CHARS]
        shown.append(f"{partition}: {text}" if partition and len(failures) > 1 else text)
    if len(seen) > MAX_DESCRIPTIONS:
        shown.append(f"{len(seen) - MAX_DESCRIPTIONS} more in the run")
    return "; ".join(shown)


def list_dates(keys: Iterable[str], limit: int = MAX_LISTED_DATES) -> str:
    """Sorted distinct auction dates, consecutive days as `first…last`, at most `limit` items.

    Keys that are not ISO dates are listed as they are. Past the limit: `… and N more` dates.
    """
    items: list[tuple[str, str, int]] = []  # (first, last, number of dates)
    previous: date | None = None
    for key in sorted(set(keys)):
        try:
            day: date | None = date.fromisoformat(key)
        except ValueError:
            day = None
        if day is not None and previous is not None and (day - previous).days == 1:
            first, _, count = items[-1]
            items[-1] = (first, key, count + 1)
        else:
            items.append((key, key, 1))
        previous = day
    listed = items[:limit]
    text = ", ".join(first if first == last else f"{first}…{last}" for first, last, _ in listed)
    rest = sum(count for _, _, count in items[limit:])
    return f"{text} and {rest} more" if rest else text


def run_partitions(tags: Mapping[str, str]) -> str:
    """The auction dates a run covered, from its tags: one date, `first…last`, or `-`."""
    if tags.get(PARTITION_TAG):
        return tags[PARTITION_TAG]
    first, last = tags.get(RANGE_START_TAG), tags.get(RANGE_END_TAG)
    if first and last:
        return first if first == last else f"{first}…{last}"
    return first or last or "-"


def error_text(summary: str, messages: Iterable[str]) -> str:
    """What went wrong, without stack traces: the run's summary, then each error of its chain."""
    lines: list[str] = []
    for line in (summary, *messages):
        line = line.strip()
        if line and line not in lines:
            lines.append(line)
    return "\n".join(lines) or "run failed"


def run_failure_alert(job: str, partitions: str, error: str, run_id: str) -> Alert:
    return Alert(
        key=RUN_FAILURE_KEY,
        title=f"flower-assets: run of {job} failed",
        fields={"Job": job, "Auction dates": partitions, "Error": error[:MAX_ERROR_CHARS]},
        run_id=run_id,
    )


@dataclass(frozen=True)
class AlertCursor:
    """Where the alert sensor stands in the stream of finished runs (stored as small JSON).

    `after`: the storage id of the last run outcome whose messages were all delivered.
    `event` and `sent`: the run outcome being delivered and the keys of its messages that
    already arrived, so that the next tick sends only the rest.
    """

    after: int
    event: int | None = None
    sent: tuple[str, ...] = ()

    @classmethod
    def parse(cls, raw: str) -> AlertCursor:
        data = json.loads(raw)
        return cls(
            after=int(data["after"]),
            event=data.get("event"),
            sent=tuple(data.get("sent", ())),
        )

    def dump(self) -> str:
        data: dict[str, object] = {"after": self.after}
        if self.event is not None:
            data |= {"event": self.event, "sent": list(self.sent)}
        return json.dumps(data, separators=(",", ":"))

    def sent_for(self, storage_id: int) -> tuple[str, ...]:
        """Keys of the messages of run outcome `storage_id` that were already delivered."""
        return self.sent if self.event == storage_id else ()

    def delivered(self, storage_id: int, key: str) -> AlertCursor:
        return AlertCursor(self.after, storage_id, (*self.sent_for(storage_id), key))

    def finished(self, storage_id: int) -> AlertCursor:
        return AlertCursor(after=storage_id)


class DeliveryFailed(Exception):
    pass


def post(
    url: str,
    payload: dict[str, str],
    attempts: int = 3,
    timeout_s: float = 5.0,
    backoff_s: float = 1.0,
    deadline: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """POST the payload, retrying transport errors and non-2xx answers a bounded number of times.

    The first attempt is always made; a retry only while `deadline` (a `clock()` value) leaves
    room for its backoff. One attempt lasts at most about 3 × `timeout_s` (connect, send, read).
    """
    last = ""
    for attempt in range(1, attempts + 1):
        try:
            response = httpx.post(url, json=payload, timeout=timeout_s)
            if response.is_success:
                return
            last = f"HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            last = type(exc).__name__
        if attempt == attempts:
            break
        pause = backoff_s * 2 ** (attempt - 1)
        if deadline is not None and clock() + pause >= deadline:
            last += "; no time left for another attempt in this tick"
            break
        sleep(pause)
    raise DeliveryFailed(f"webhook did not accept the alert after {attempt} attempt(s) ({last})")
