"""The settings model: every variable declared once, refused in one line, its default used everywhere."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import pytest

from flower_assets import settings
from flower_assets.defs.alerting.sensors import AlertResource
from flower_assets.defs.resources import AtApiResource, QuarantineThreshold, default_resources

PACKAGE = Path(settings.__file__).parent

# A refused value of every setting that can refuse one, and how the refusal quotes it.
REFUSED = {
    "FLOWER_API_BASE_URL": ("not-a-url", "'not-a-url'"),
    "FLOWER_DATABASE_URL": ("mysql://flower:pw@db/flower", "'mysql://flower:***@db/flower'"),
    "FLOWER_START_DATE": ("2018-02-30", "'2018-02-30'"),
    "FLOWER_INDEX_BASE_DATE": ("2024-13-01", "'2024-13-01'"),
    "FLOWER_MAX_REJECTED_SHARE": ("1.5", "'1.5'"),
    "FLOWER_CORRECTION_DAYS": ("-1", "'-1'"),
    "FLOWER_API_DAILY_QUOTA": ("0", "'0'"),
    "FLOWER_API_PAGE_SIZE": ("lots", "'lots'"),
    "FLOWER_HISTORY_RESERVE_CALLS": ("-10", "'-10'"),
    "FLOWER_ALERT_WEBHOOK_URL": ("hooks.slack.com/services/T0/B0/secret", "(hidden)"),
    "FLOWER_UI_BASE_URL": ("dagster.internal", "'dagster.internal'"),
    "DAGSTER_EVENT_BATCH_SIZE": ("lots", "'lots'"),
}
# Any value is taken: a key, a directory.
TAKES_ANY = {"FLOWER_API_KEY", "DAGSTER_HOME"}


@pytest.fixture(autouse=True)
def unset(monkeypatch):
    for setting in settings.SETTINGS:
        monkeypatch.delenv(setting.variable, raising=False)


def test_every_setting_is_declared_once():
    variables = [setting.variable for setting in settings.SETTINGS]
    assert len(variables) == len(set(variables))
    assert set(variables) == set(REFUSED) | TAKES_ANY


def test_the_package_reads_the_environment_only_through_the_settings():
    reads = re.compile(r"environ\.get\(|getenv\(|environ\[")
    readers = [
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if path.name != "settings.py" and reads.search(path.read_text(encoding="utf-8"))
    ]
    assert readers == []


@pytest.mark.parametrize("setting", settings.SETTINGS, ids=lambda s: s.variable)
def test_unset_or_empty_is_the_default(monkeypatch, setting):
    expected = setting.default_factory() if setting.default_factory else setting.default
    assert setting() == expected and setting.problem() is None
    monkeypatch.setenv(setting.variable, "  ")
    assert setting() == expected


@pytest.mark.parametrize("variable", REFUSED)
def test_a_refused_value_is_one_line_naming_the_variable_the_value_and_what_is_expected(
    monkeypatch, variable
):
    value, quoted = REFUSED[variable]
    setting = next(s for s in settings.SETTINGS if s.variable == variable)
    monkeypatch.setenv(variable, value)
    line = f"{variable}={quoted} must be {setting.expected}"
    with pytest.raises(settings.BadSetting) as refused:
        setting()
    assert str(refused.value) == line and "\n" not in line
    assert settings.problems() == [line]
    with pytest.raises(ValueError, match=re.escape(line)):
        settings.validate()


def test_secrets_are_never_quoted(monkeypatch):
    monkeypatch.setenv("FLOWER_DATABASE_URL", "mysql://flower:s3cret@db/flower")
    monkeypatch.setenv("FLOWER_ALERT_WEBHOOK_URL", "hooks.slack.com/services/T0/B0/s3cret")
    monkeypatch.setenv("FLOWER_API_KEY", "0123456789abcdef-s3cret")
    assert len(settings.problems()) == 2
    assert "s3cret" not in "\n".join(settings.problems()) + settings.settings_page()


def test_every_refused_value_is_named_at_once(monkeypatch):
    monkeypatch.setenv("FLOWER_START_DATE", "2018-02-30")
    monkeypatch.setenv("FLOWER_API_PAGE_SIZE", "0")
    with pytest.raises(settings.BadSetting) as refused:
        settings.validate()
    said = str(refused.value)
    assert "\n" not in said and "FLOWER_START_DATE=" in said and "FLOWER_API_PAGE_SIZE=" in said


def test_good_values_are_typed(monkeypatch):
    for variable, value in {
        "FLOWER_API_BASE_URL": "http://127.0.0.1:8080/api/returnData.api",
        "FLOWER_DATABASE_URL": "postgresql+psycopg2://flower@db:5432/flower",
        "FLOWER_START_DATE": "2020-02-29",
        "FLOWER_INDEX_BASE_DATE": "2024-01-01",
        "FLOWER_MAX_REJECTED_SHARE": "0",
        "FLOWER_CORRECTION_DAYS": "0",
        "FLOWER_API_DAILY_QUOTA": "1",
        "FLOWER_API_PAGE_SIZE": "1000000",
        "FLOWER_UI_BASE_URL": "https://dagster.internal/",
        "DAGSTER_EVENT_BATCH_SIZE": "0",
        "DAGSTER_HOME": "/srv/flower/dagster_home",
    }.items():
        monkeypatch.setenv(variable, value)
    settings.validate()
    assert settings.start_date() == date(2020, 2, 29)
    assert settings.index_base_date() == date(2024, 1, 1)
    assert settings.max_rejected_share() == 0.0
    assert (settings.correction_days(), settings.daily_quota()) == (0, 1)
    assert (settings.page_size(), settings.event_batch_size()) == (1_000_000, 0)
    assert settings.ui_base_url() == "https://dagster.internal"
    assert settings.reports_dir() == Path("/srv/flower/dagster_home/reports")


def test_the_default_warehouse_lives_in_the_instance_directory(monkeypatch):
    assert settings.database_url() == "sqlite:///.dagster_home/flower_warehouse.sqlite"
    monkeypatch.setenv("DAGSTER_HOME", "/srv/flower/dagster_home")
    assert settings.database_url() == "sqlite:////srv/flower/dagster_home/flower_warehouse.sqlite"


def test_live_only_with_a_key(monkeypatch):
    assert not settings.is_live() and AtApiResource().sample_mode
    monkeypatch.setenv("FLOWER_API_KEY", "0123456789abcdef0123456789abcdef")
    assert settings.is_live() and not AtApiResource().sample_mode


def test_resource_fields_take_their_defaults_from_the_settings():
    fields = {
        (AtApiResource, "page_size"): settings.page_size,
        (AtApiResource, "daily_quota"): settings.daily_quota,
        (AtApiResource, "correction_days"): settings.correction_days,
        (QuarantineThreshold, "max_rejected_share"): settings.max_rejected_share,
        (AlertResource, "webhook_url"): settings.alert_webhook_url,
        (AlertResource, "ui_base_url"): settings.ui_base_url,
    }
    for (resource, name), setting in fields.items():
        field = resource.model_fields[name]
        assert field.default == setting.default, (resource.__name__, name)
        assert setting.variable in field.description, (resource.__name__, name)


def test_the_environment_configures_the_resources_as_declared(monkeypatch):
    resources = default_resources()
    assert resources["at_api"].page_size == settings.page_size.default
    assert resources["quarantine_threshold"].max_rejected_share == 0.01
    assert resources["price_index"].base_date is None
    monkeypatch.setenv("FLOWER_API_PAGE_SIZE", "50")
    monkeypatch.setenv("FLOWER_INDEX_BASE_DATE", "2024-03-01")
    resources = default_resources()
    assert resources["at_api"].page_size == 50
    assert resources["price_index"].base_date == "2024-03-01"


def test_the_settings_page_lists_every_variable_with_its_default():
    page = settings.settings_page()
    rows = [line for line in page.splitlines() if line.startswith("| `")]
    assert [row.split("`")[1] for row in rows] == [s.variable for s in settings.SETTINGS]
    assert "| `FLOWER_API_KEY` | unset: sample mode |" in page
    assert "| `FLOWER_API_PAGE_SIZE` | `5000` |" in page
