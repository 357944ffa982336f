"""Dagster resources: the aT API client and the warehouse, configured from the environment."""

from __future__ import annotations

from datetime import date
from typing import Any

import dagster as dg
import httpx
from pydantic import Field

from flower_assets import settings
from flower_assets.cli import runs
from flower_assets.sample.days import SAMPLE_KEY, sample_transport
from flower_assets.source.client import AtFlowerClient, RetryPolicy
from flower_assets.warehouse.database import LIVE_SOURCE, SAMPLE_SOURCE, Warehouse, display_url


def from_setting(setting: settings.Setting) -> Any:
    """A resource field whose default and description are the setting's own."""
    return Field(default=setting.default, description=f"{setting.meaning} ({setting.variable})")


class AtApiResource(dg.ConfigurableResource):
    """The aT flower-auction API. Without a service key it serves the sample days of the synthetic market."""

    service_key: str | None = Field(
        default=None, description=f"aT service key; unset: {settings.api_key.variable}"
    )
    base_url: str | None = Field(
        default=None,
        description=f"unset: {settings.api_base_url.variable}, or {settings.api_base_url.default}",
    )
    page_size: int = from_setting(settings.page_size)
    timeout_s: float = Field(default=60.0, description="Read timeout per call, seconds")
    max_attempts: int = Field(default=5, description="Calls per page before giving up")
    backoff_s: float = Field(default=0.5, description="First retry delay; doubles each attempt")
    daily_quota: int = from_setting(settings.daily_quota)
    correction_days: int = from_setting(settings.correction_days)

    # A field not given in run config still comes from the environment: a partial resource
    # config (say only page_size) must never turn a live deployment into sample mode.
    @property
    def key(self) -> str | None:
        return self.service_key or settings.api_key()

    @property
    def url(self) -> str:
        return self.base_url or settings.api_base_url()

    @property
    def sample_mode(self) -> bool:
        # A key given in the run config counts as well as the environment's.
        return not (self.service_key or settings.is_live())

    @property
    def source(self) -> str:
        """What fills the warehouse: the two never mix in one (see Warehouse.claim_source)."""
        return SAMPLE_SOURCE if self.sample_mode else LIVE_SOURCE

    def client(self) -> AtFlowerClient:
        return AtFlowerClient(
            base_url=self.url,
            service_key=self.key or SAMPLE_KEY,
            page_size=self.page_size,
            timeout=httpx.Timeout(self.timeout_s, connect=min(10.0, self.timeout_s)),
            retry=RetryPolicy(max_attempts=self.max_attempts, base_delay_s=self.backoff_s),
            transport=sample_transport() if self.sample_mode else None,
        )


class WarehouseResource(dg.ConfigurableResource):
    """The warehouse database (FLOWER_DATABASE_URL): a SQLite file by default, or PostgreSQL."""

    url: str = Field(
        description=f"{settings.database_url.meaning} ({settings.database_url.variable})"
    )

    @property
    def location(self) -> str:
        """The warehouse's URL with any password masked, for messages."""
        return display_url(self.url)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        # Every run's resources start in the process that executes its steps, before any step
        # claims a pool slot: the run is tagged with that process, so release_dead_runs finds
        # it if the process is killed, whoever launched the run and whatever it runs.
        if context.instance is not None and context.dagster_run is not None:
            runs.record_process(context.instance, context.dagster_run)

    def open(self) -> Warehouse:
        # No DDL per step: one query finds the warehouse at the code's schema revision. Only an
        # empty one is migrated (once, under the migrations' lock); one behind is refused.
        return Warehouse.open(self.url)


class QuarantineThreshold(dg.ConfigurableResource):
    """How much of an auction date may be quarantined before the date is blocked."""

    max_rejected_share: float = from_setting(settings.max_rejected_share)


class PriceIndexSettings(dg.ConfigurableResource):
    """Where the category price index is 100."""

    base_date: str | None = Field(
        default=None,
        description=f"YYYY-MM-DD; unset: each category's first auction date. "
        f"{settings.index_base_date.meaning} ({settings.index_base_date.variable})",
    )

    def base(self) -> date | None:
        return date.fromisoformat(self.base_date) if self.base_date else None


def from_env(setting: settings.Setting, value: object) -> object:
    """A set variable as EnvVar, which keeps the value itself out of the UI's resource config
    and every run's job snapshot; `value` (the setting's default) when it is unset."""
    return dg.EnvVar(setting.variable) if setting.is_set() else value


def default_resources() -> dict[str, dg.ConfigurableResource]:
    """The resources as the environment configures them (settings.validate() has taken it)."""
    return {
        "at_api": AtApiResource(
            service_key=from_env(settings.api_key, None),
            base_url=from_env(settings.api_base_url, settings.api_base_url()),
            page_size=settings.page_size(),
            daily_quota=settings.daily_quota(),
            correction_days=settings.correction_days(),
        ),
        "warehouse": WarehouseResource(
            url=from_env(settings.database_url, settings.database_url())
        ),
        "quarantine_threshold": QuarantineThreshold(
            max_rejected_share=settings.max_rejected_share()
        ),
        "price_index": PriceIndexSettings(
            base_date=base.isoformat() if (base := settings.index_base_date()) else None
        ),
    }


@dg.definitions
def resources() -> dg.Definitions:
    """The resources of the code location, read from the environment when it loads."""
    from flower_assets.defs.alerting.sensors import AlertResource

    return dg.Definitions(
        resources={
            **default_resources(),
            "alerts": AlertResource(
                webhook_url=from_env(settings.alert_webhook_url, None),
                ui_base_url=settings.ui_base_url(),
            ),
        }
    )
