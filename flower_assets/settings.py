"""Environment variables the platform reads, with their defaults (see README)."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path
from urllib.parse import urlsplit

import yaml

API_KEY_ENV = "FLOWER_API_KEY"
API_BASE_URL_ENV = "FLOWER_API_BASE_URL"
DATABASE_URL_ENV = "FLOWER_DATABASE_URL"
START_DATE_ENV = "FLOWER_START_DATE"
INDEX_BASE_DATE_ENV = "FLOWER_INDEX_BASE_DATE"
MAX_REJECTED_SHARE_ENV = "FLOWER_MAX_REJECTED_SHARE"
CORRECTION_DAYS_ENV = "FLOWER_CORRECTION_DAYS"
DAILY_QUOTA_ENV = "FLOWER_API_DAILY_QUOTA"
PAGE_SIZE_ENV = "FLOWER_API_PAGE_SIZE"
ALERT_WEBHOOK_URL_ENV = "FLOWER_ALERT_WEBHOOK_URL"
UI_BASE_URL_ENV = "FLOWER_UI_BASE_URL"
# Dagster's own: events a run's process hands to the event log together (0: one by one).
EVENT_BATCH_SIZE_ENV = "DAGSTER_EVENT_BATCH_SIZE"
# A 100-date run plans 4 x 100 materializations and 15 checks: one batch.
DEFAULT_EVENT_BATCH_SIZE = 500
DEFAULT_UI_BASE_URL = "http://127.0.0.1:3000"

DEFAULT_API_BASE_URL = "https://flower.at.or.kr/api/returnData.api"
DEFAULT_START_DATE = "2018-01-01"
# Without DAGSTER_HOME the repo-local instance of dagster.yaml lives in .dagster_home/ too.
LOCAL_HOME = Path(".dagster_home")
WAREHOUSE_FILE_NAME = "flower_warehouse.sqlite"
# How dagster.yaml names the instance directory where it must name one (its SQLite storages').
DAGSTER_HOME_VALUE = {"env": "DAGSTER_HOME"}


def ui_base_url() -> str:
    """The Dagster UI's address, for links in alerts and metadata."""
    return (env(UI_BASE_URL_ENV) or DEFAULT_UI_BASE_URL).rstrip("/")


def env(name: str) -> str | None:
    """An environment variable, with an empty value treated as unset."""
    value = os.environ.get(name, "").strip()
    return value or None


def sample_mode() -> bool:
    """True without FLOWER_API_KEY: the synthetic market's sample days stand in for the API."""
    return env(API_KEY_ENV) is None


def api_base_url() -> str:
    """The aT API endpoint: an http(s) URL with a host, refused otherwise (never retried)."""
    raw = env(API_BASE_URL_ENV) or DEFAULT_API_BASE_URL
    try:
        parts = urlsplit(raw)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError for a port that is no number
    except ValueError:  # e.g. an unclosed IPv6 bracket or a port that is no number
        parts, host = None, None
    if parts is None or parts.scheme.lower() not in ("http", "https") or not host:
        raise ValueError(
            f"{API_BASE_URL_ENV}={raw!r} must be an http(s) URL with a host, "
            f"e.g. {DEFAULT_API_BASE_URL}"
        )
    return raw


def start_date() -> date:
    raw = env(START_DATE_ENV) or DEFAULT_START_DATE
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise ValueError(f"{START_DATE_ENV}={raw!r} is not a YYYY-MM-DD date") from None


def index_base_date() -> date | None:
    """The date on which the category price index is 100; None: each category's first date."""
    raw = env(INDEX_BASE_DATE_ENV)
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise ValueError(f"{INDEX_BASE_DATE_ENV}={raw!r} is not a YYYY-MM-DD date") from None


def reports_dir() -> Path:
    """Where the market report asset writes its HTML files: reports/ in the instance directory."""
    return (Path(env("DAGSTER_HOME") or LOCAL_HOME) / "reports").resolve()


def default_database_url() -> str:
    """SQLite file under $DAGSTER_HOME, or under ./.dagster_home when it is unset."""
    home = Path(env("DAGSTER_HOME") or LOCAL_HOME)
    return f"sqlite:///{home / WAREHOUSE_FILE_NAME}"


def database_url() -> str:
    return env(DATABASE_URL_ENV) or default_database_url()


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


def max_rejected_share() -> float:
    raw = env(MAX_REJECTED_SHARE_ENV) or "0.01"
    try:
        share = float(raw)
    except ValueError:
        share = -1.0
    if not 0 <= share <= 1:
        raise ValueError(
            f"{MAX_REJECTED_SHARE_ENV}={raw!r} must be a share between 0 and 1, e.g. 0.01"
        )
    return share


def _whole_number(name: str, default: int) -> int:
    raw = env(name) or str(default)
    if not raw.isdigit():
        raise ValueError(f"{name}={raw!r} must be a whole number, e.g. {default}")
    return int(raw)


def correction_days() -> int:
    """How many days before the latest auction day are re-fetched for late corrections."""
    return _whole_number(CORRECTION_DAYS_ENV, 3)


def daily_quota() -> int:
    """Calls the aT key may make per KST day (1,000 unless raised on request)."""
    quota = _whole_number(DAILY_QUOTA_ENV, 1000)
    if quota < 1:
        raise ValueError(
            f"{DAILY_QUOTA_ENV}={env(DAILY_QUOTA_ENV)!r} must be at least 1, e.g. 1000"
        )
    return quota


def page_size() -> int:
    """Rows asked for per API call (countPerPage); one page per category and date is safest."""
    size = _whole_number(PAGE_SIZE_ENV, 5000)
    if size < 1:
        raise ValueError(f"{PAGE_SIZE_ENV}={env(PAGE_SIZE_ENV)!r} must be at least 1, e.g. 5000")
    return size


def event_batch_size() -> int:
    """Events Dagster stores in one batch (a run's planned events, a ranged output's
    materializations); 0 stores each event by itself, Dagster's default."""
    return _whole_number(EVENT_BATCH_SIZE_ENV, DEFAULT_EVENT_BATCH_SIZE)


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
    os.environ[EVENT_BATCH_SIZE_ENV] = str(event_batch_size())


def validate() -> None:
    """Read every setting once: the first bad one raises ValueError naming its variable.

    The CLI calls this before it starts anything; the code location reads the same functions
    when it builds its resources, so both refuse a bad value with the same message.
    """
    start_date()
    database_url()
    api_base_url()
    daily_quota()
    page_size()
    correction_days()
    max_rejected_share()
    event_batch_size()


def is_live() -> bool:
    """Live (a service key set: the aT API) or sample mode (the package's generated data)."""
    return env(API_KEY_ENV) is not None
