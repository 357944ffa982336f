"""Every environment variable the platform reads, declared once: name, type, default, meaning.

Each setting is a `Setting`: called, it returns its typed value (the default when the variable
is unset or empty) or raises `BadSetting` with one line naming the variable, the value and what
is expected. `validate()` reads them all; the CLI calls it before it starts anything and the code
location when it loads (flower_assets/definitions.py), so both refuse the same values with the
same line. `settings_page()` writes docs/settings.md from these declarations.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Generic, TypeVar
from urllib.parse import urlsplit

import yaml

T = TypeVar("T")

# Without DAGSTER_HOME the repo-local instance of dagster.yaml lives in .dagster_home/ too.
LOCAL_HOME = Path(".dagster_home")
WAREHOUSE_FILE_NAME = "flower_warehouse.sqlite"
# How dagster.yaml names the instance directory where it must name one (its SQLite storages').
DAGSTER_HOME_VALUE = {"env": "DAGSTER_HOME"}


class BadSetting(ValueError):
    """A setting's value is refused; the message is one line naming the variable."""


def _env(name: str) -> str | None:
    """An environment variable, with an empty value treated as unset."""
    value = os.environ.get(name, "").strip()
    return value or None


@dataclass(frozen=True)
class Setting(Generic[T]):
    """One environment variable: its name, what it means, its default and the values it takes."""

    variable: str
    meaning: str
    # The value of a set variable; raises ValueError for a value the setting refuses.
    parse: Callable[[str], T]
    # What `parse` takes, in words with an example, for the refusal: "must be <expected>".
    expected: str
    # The value while the variable is unset (None: unset means "none").
    default: T | None = None
    # Instead of `default`, for a default that depends on another setting (DAGSTER_HOME).
    default_factory: Callable[[], T] | None = None
    # How docs/settings.md shows the default, where the default itself says too little.
    shown_default: str | None = None
    # How a refused value is quoted: never with a password in it.
    quote: Callable[[str], str] = repr

    def __call__(self) -> T | None:
        raw = _env(self.variable)
        if raw is None:
            return self.default_factory() if self.default_factory else self.default
        try:
            return self.parse(raw)
        except ValueError:
            raise BadSetting(f"{self.variable}={self.quote(raw)} must be {self.expected}") from None

    def is_set(self) -> bool:
        return _env(self.variable) is not None

    def problem(self) -> str | None:
        """The one-line refusal of the variable's value; None when it is taken."""
        try:
            self()
        except BadSetting as exc:
            return str(exc)
        return None

    def default_text(self) -> str:
        if self.shown_default is not None:
            return self.shown_default
        return f"`{self.default}`"


def _iso_date(raw: str) -> date:
    return date.fromisoformat(raw)


def _whole_number(minimum: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        if not raw.isdigit() or int(raw) < minimum:
            raise ValueError(raw)
        return int(raw)

    return parse


def _share(raw: str) -> float:
    share = float(raw)
    if not 0 <= share <= 1:
        raise ValueError(raw)
    return share


def _http_url(raw: str) -> str:
    parts = urlsplit(raw)
    parts.port  # noqa: B018 - raises ValueError for a port that is no number
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError(raw)
    return raw


def _ui_url(raw: str) -> str:
    return _http_url(raw).rstrip("/")


def _database_url(raw: str) -> str:
    scheme = raw.split(":", 1)[0].split("+", 1)[0].lower()
    if scheme not in ("sqlite", "postgresql", "postgres") or "://" not in raw:
        raise ValueError(raw)
    return raw


def _masked(raw: str) -> str:
    # Imported only to refuse a value: the warehouse's module is heavier than the settings'.
    from flower_assets.warehouse.database import display_url

    return repr(display_url(raw))


def default_database_url() -> str:
    """SQLite file under $DAGSTER_HOME, or under ./.dagster_home when it is unset."""
    return f"sqlite:///{(dagster_home() or LOCAL_HOME) / WAREHOUSE_FILE_NAME}"


api_key: Setting[str] = Setting(
    variable="FLOWER_API_KEY",
    meaning="aT service key: live mode, the aT API. Unset: sample mode, the synthetic market's "
    "sample days (2024-02-01 to 2024-08-31) through the same client, paging and parsing code. "
    "A warehouse keeps to the source that filled it first.",
    parse=str,
    expected="an aT service key",
    shown_default="unset: sample mode",
)
api_base_url: Setting[str] = Setting(
    variable="FLOWER_API_BASE_URL",
    meaning="The aT API's address (point it at a fake server for testing).",
    parse=_http_url,
    expected="an http(s) URL with a host, e.g. https://flower.at.or.kr/api/returnData.api",
    default="https://flower.at.or.kr/api/returnData.api",
)
database_url: Setting[str] = Setting(
    variable="FLOWER_DATABASE_URL",
    meaning="The warehouse: `sqlite:///path`, or `postgresql://user:pw@host:port/db` for "
    "PostgreSQL.",
    parse=_database_url,
    expected="sqlite:///path or postgresql://user:pw@host:port/db",
    default_factory=default_database_url,
    shown_default=f"`sqlite:///$DAGSTER_HOME/{WAREHOUSE_FILE_NAME}`",
    quote=_masked,
)
start_date: Setting[date] = Setting(
    variable="FLOWER_START_DATE",
    meaning="The first auction-date partition in live mode.",
    parse=_iso_date,
    expected="a YYYY-MM-DD date, e.g. 2018-01-01",
    default=date(2018, 1, 1),
)
index_base_date: Setting[date] = Setting(
    variable="FLOWER_INDEX_BASE_DATE",
    meaning="Where `category_price_index` is 100: each category's first auction date on or "
    "after it. Changing it rescales every index value: rebuild the market tables after a change.",
    parse=_iso_date,
    expected="a YYYY-MM-DD date, e.g. 2024-01-01, or unset",
    shown_default="unset: each category's first auction date",
)
max_rejected_share: Setting[float] = Setting(
    variable="FLOWER_MAX_REJECTED_SHARE",
    meaning="Largest share of an auction date's rows that may be quarantined before the "
    "blocking check keeps the date out of the normalized tables.",
    parse=_share,
    expected="a share between 0 and 1, e.g. 0.01",
    default=0.01,
)
correction_days: Setting[int] = Setting(
    variable="FLOWER_CORRECTION_DAYS",
    meaning="Dates before the latest auction date (KST) that are always re-fetched for late "
    "corrections, never served from the cache; the daily schedule re-runs them.",
    parse=_whole_number(0),
    expected="a whole number, e.g. 3",
    default=3,
)
daily_quota: Setting[int] = Setting(
    variable="FLOWER_API_DAILY_QUOTA",
    meaning="Calls per KST day the key may make (1,000 unless aT raised it on request); a call "
    "beyond it is refused (QuotaExceeded), never made.",
    parse=_whole_number(1),
    expected="a whole number of at least 1, e.g. 1000",
    default=1000,
)
history_reserve_calls: Setting[int] = Setting(
    variable="FLOWER_HISTORY_RESERVE_CALLS",
    meaning="Calls of each KST day's quota the `history_backfill` sensor leaves for the daily "
    "schedule: it loads missing history only with what is left above them. The default covers "
    "the schedule's window (4 dates x 4 categories = 16 calls with FLOWER_CORRECTION_DAYS=3) "
    "with room for retries, extra pages and a few runs by hand.",
    parse=_whole_number(0),
    expected="a whole number, e.g. 100",
    default=100,
)
page_size: Setting[int] = Setting(
    variable="FLOWER_API_PAGE_SIZE",
    meaning="Rows asked for per API call (countPerPage); keep it above the busiest day: a "
    "larger day is walked page by page and verified with one more call.",
    parse=_whole_number(1),
    expected="a whole number of at least 1, e.g. 5000",
    default=5000,
)
alert_webhook_url: Setting[str] = Setting(
    variable="FLOWER_ALERT_WEBHOOK_URL",
    meaning="Slack-compatible webhook for failed checks and failed runs.",
    parse=_http_url,
    expected="an http(s) URL with a host, e.g. https://hooks.slack.com/services/…",
    shown_default="unset: alerts are logged only",
    # A webhook's path is its secret.
    quote=lambda raw: "(hidden)",
)
ui_base_url: Setting[str] = Setting(
    variable="FLOWER_UI_BASE_URL",
    meaning="The Dagster UI's address, for links in alerts and metadata.",
    parse=_ui_url,
    expected="an http(s) URL with a host, e.g. https://dagster.internal",
    default="http://127.0.0.1:3000",
)
event_batch_size: Setting[int] = Setting(
    variable="DAGSTER_EVENT_BATCH_SIZE",
    meaning="Dagster's own: events a run's process stores in one batch (0: one by one, "
    "Dagster's default). A 100-date run plans 4 x 100 materializations and 15 checks: one batch.",
    parse=_whole_number(0),
    expected="a whole number, e.g. 500",
    default=500,
)
dagster_home: Setting[Path] = Setting(
    variable="DAGSTER_HOME",
    meaning="Dagster's instance directory: runs, events, schedules, logs, reports and the "
    "default warehouse. Dagster's own commands need it set (`DAGSTER_HOME=$PWD/.dagster_home`).",
    parse=Path,
    expected="a directory",
    shown_default="unset: `flower-assets` uses `./.dagster_home`, configured by `./dagster.yaml`",
)

# In the order docs/settings.md lists them.
SETTINGS: tuple[Setting, ...] = (
    api_key,
    api_base_url,
    database_url,
    start_date,
    index_base_date,
    correction_days,
    page_size,
    daily_quota,
    history_reserve_calls,
    max_rejected_share,
    alert_webhook_url,
    ui_base_url,
    event_batch_size,
    dagster_home,
)


def problems() -> list[str]:
    """The one-line refusal of every setting whose value is refused."""
    return [problem for setting in SETTINGS if (problem := setting.problem())]


def validate() -> None:
    """Read every setting: BadSetting names each refused one, one line each, joined by '; '."""
    if found := problems():
        raise BadSetting("; ".join(found))


def is_live() -> bool:
    """Live (a service key set: the aT API) or sample mode (the package's generated data)."""
    return api_key.is_set()


def reports_dir() -> Path:
    """Where the market report asset writes its HTML files: reports/ in the instance directory."""
    return ((dagster_home() or LOCAL_HOME) / "reports").resolve()


def local_instance_config(config: Path, home: Path) -> dict | None:
    """`config` (./dagster.yaml) for an instance in `home` while DAGSTER_HOME is unset.

    dagster.yaml names no directory where Dagster has a default under the instance directory,
    and names the instance directory as `{env: DAGSTER_HOME}` where it must (its SQLite storages').
    Here `home` stands in for it. None when there is no such file: Dagster's defaults.
    """
    if not config.exists():
        return None

    def in_home(value: object) -> object:
        if value == DAGSTER_HOME_VALUE:
            return str(home)
        if isinstance(value, dict):
            return {key: in_home(item) for key, item in value.items()}
        return value

    return in_home(yaml.safe_load(config.read_text()) or {})


def apply_event_batching() -> None:
    """Turn Dagster's event batching on in this process, unless its environment says otherwise.

    Dagster reads DAGSTER_EVENT_BATCH_SIZE, at each event, in the process that stores a run's
    events: the `flower-assets` command for the runs it executes itself (flower_assets/cli),
    a run worker for the runs the daemon and the webserver launch. Both load the code location,
    flower_assets/definitions.py, before a run starts (the command to build the run, a worker
    to execute it), and only processes that run its code load it: so it is applied there, once,
    instead of in every environment that starts one of those processes (a shell, a service unit,
    `dagster dev`), where a forgotten copy silently makes backfills slower. An operator's value
    is kept (0 stores every event by itself). The webserver and the daemon do not load the
    location: the planned events of the runs they create are stored one by one unless their
    environment sets the variable too.
    """
    os.environ[event_batch_size.variable] = str(event_batch_size())


def settings_page() -> str:
    """docs/settings.md: every setting's variable, default and meaning."""
    rows = "\n".join(f"| `{s.variable}` | {s.default_text()} | {s.meaning} |" for s in SETTINGS)
    return f"""# Settings

<!-- Generated from flower_assets/settings.py by `uv run python -m flower_assets.docs`. -->

Every setting is an environment variable, read by the `flower-assets` command and by the code
location (`dagster dev`, the webserver, the daemon's runs). Set them in the shell or in the
service unit that starts those processes; an empty value counts as unset. `flower-assets`
checks them all before it starts anything: a refused value ends it with exit code 2 and one
line naming the variable, the value and what is expected (several refused values: one line
naming each). The code location refuses the same values with the same line when it loads. The
values of the service key, a database password and the alert webhook are never shown.

| variable | default | meaning |
| --- | --- | --- |
{rows}
"""
