"""Alert messages (Slack-compatible JSON) and their delivery with bounded retries."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from flower_assets.client import redact


@dataclass(frozen=True)
class Alert:
    """One event worth a person's attention: a failed check or a failed run."""

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


def check_alert(
    asset: str, check: str, partition: str | None, severity: str, description: str, run_id: str
) -> Alert:
    return Alert(
        title=f"flower-assets: check {check} failed on {asset}",
        fields={
            "Asset": asset,
            "Auction date": partition or "(all dates of the run)",
            "Check": check,
            "Severity": severity,
            "What": description,
        },
        run_id=run_id,
    )


def run_failure_alert(job: str, partitions: str, error: str, run_id: str) -> Alert:
    return Alert(
        title=f"flower-assets: run of {job} failed",
        fields={"Job": job, "Auction dates": partitions, "Error": error[:1500]},
        run_id=run_id,
    )


class DeliveryFailed(Exception):
    pass


def post(
    url: str,
    payload: dict[str, str],
    attempts: int = 3,
    timeout_s: float = 10.0,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """POST the payload, retrying transport errors and non-2xx answers a bounded number of times."""
    last = ""
    for attempt in range(1, attempts + 1):
        try:
            response = httpx.post(url, json=payload, timeout=timeout_s)
            if response.is_success:
                return
            last = f"HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            last = type(exc).__name__
        if attempt < attempts:
            sleep(2 ** (attempt - 1))
    raise DeliveryFailed(f"webhook did not accept the alert after {attempts} attempts ({last})")
