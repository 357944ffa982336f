"""Dagster resources: the aT API client and the warehouse, configured from the environment."""

from __future__ import annotations

from datetime import date

import dagster as dg
import httpx
from pydantic import Field

from flower_assets import settings
from flower_assets.cli import runs
from flower_assets.sample.days import SAMPLE_KEY, sample_transport
from flower_assets.source.client import AtFlowerClient, RetryPolicy
from flower_assets.warehouse.database import LIVE_SOURCE, SAMPLE_SOURCE, Warehouse, display_url


class AtApiResource(dg.ConfigurableResource):
    """The aT flower-auction API. Without a service key it serves the sample days of the synthetic market."""

    service_key: str | None = Field(
        default=None, description="aT service key; unset: FLOWER_API_KEY from the environment"
    )
    base_url: str | None = Field(
        default=None, description="unset: FLOWER_API_BASE_URL, or the aT API's address"
    )
    page_size: int = Field(
        default=5000, description="countPerPage: rows asked for per call (FLOWER_API_PAGE_SIZE)"
    )
    timeout_s: float = Field(default=60.0, description="Read timeout per call, seconds")
    max_attempts: int = Field(default=5, description="Calls per page before giving up")
    backoff_s: float = Field(default=0.5, description="First retry delay; doubles each attempt")
    daily_quota: int = Field(
        default=1000, description="Calls per KST day the key may make (FLOWER_API_DAILY_QUOTA)"
    )
    correction_days: int = Field(
        default=3,
        description="Dates this close to today are always re-fetched, never served from the cache (FLOWER_CORRECTION_DAYS)",
    )

    # A field not given in run config still comes from the environment: a partial resource
    # config (say only page_size) must never turn a live deployment into sample mode.
    @property
    def key(self) -> str | None:
        return self.service_key or settings.env(settings.API_KEY_ENV)

    @property
    def url(self) -> str:
        return self.base_url or settings.api_base_url()

    @property
    def sample_mode(self) -> bool:
        return not self.key

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

    url: str = Field(description="sqlite:///path or postgresql://user:pw@host:port/db")

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

    max_rejected_share: float = Field(
        default=0.01,
        description="Largest share of an auction date's rows that may be quarantined before "
        "rejected_share_within_threshold fails and blocks downstream assets (FLOWER_MAX_REJECTED_SHARE)",
    )


class PriceIndexSettings(dg.ConfigurableResource):
    """Where the category price index is 100."""

    base_date: str | None = Field(
        default=None,
        description="YYYY-MM-DD: the index is 100 on each category's first auction date on or "
        "after it; unset: on each category's first auction date (FLOWER_INDEX_BASE_DATE)",
    )

    def base(self) -> date | None:
        return date.fromisoformat(self.base_date) if self.base_date else None


def _from_env(name: str, default: str) -> str | dg.EnvVar:
    # EnvVar keeps the value itself out of the UI's resource config; unset falls back to default.
    return dg.EnvVar(name) if settings.env(name) else default


def default_resources() -> dict[str, dg.ConfigurableResource]:
    return {
        "at_api": AtApiResource(
            service_key=dg.EnvVar(settings.API_KEY_ENV)
            if settings.env(settings.API_KEY_ENV)
            else None,
            # Read once through settings, which refuses a value that is no http(s) URL.
            base_url=_from_env(settings.API_BASE_URL_ENV, settings.api_base_url()),
            page_size=settings.page_size(),
            daily_quota=settings.daily_quota(),
            correction_days=settings.correction_days(),
        ),
        "warehouse": WarehouseResource(
            url=_from_env(settings.DATABASE_URL_ENV, settings.default_database_url())
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
                webhook_url=dg.EnvVar(settings.ALERT_WEBHOOK_URL_ENV)
                if settings.env(settings.ALERT_WEBHOOK_URL_ENV)
                else None,
                ui_base_url=settings.env(settings.UI_BASE_URL_ENV) or settings.DEFAULT_UI_BASE_URL,
            ),
        }
    )
