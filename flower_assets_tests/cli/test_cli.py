"""The commands a user types, run as subprocesses the way they would run them."""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import psycopg2
import pytest

from flower_assets import settings
from flower_assets.sample.days import SAMPLE_PERIOD, envelope
from flower_assets.sample.fake_at_server import FakeAtServer, Reply
from flower_assets.sample.market import day_items
from flower_assets.source.cache import kst_today
from flower_assets.source.categories import Category
from flower_assets.warehouse.database import Warehouse
from flower_assets.warehouse.schemas import TABLES
from flower_assets_tests.conftest import TEST_KEY, _drop_tables

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
pytestmark = pytest.mark.slow


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLOWER_", "DAGSTER_"))}
    env["DAGSTER_DISABLE_TELEMETRY"] = "yes"
    env.update(extra)
    return env


def counts(path: Path) -> dict[str, int]:
    with sqlite3.connect(path) as conn:
        return {
            t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
            for t in (
                "public_bidding_flowers",
                "flower_types",
                "flowers",
                "bidding_flowers",
                "daily_item_prices",
                "variety_price_changes",
                "category_price_index",
            )
        }


def summary(stdout: str) -> tuple[dict[str, int], dict[str, str]]:
    """The command's summary: how many dates were loaded, unchanged, blocked, failed; each cause."""
    said = stdout[stdout.index("Summary of auction dates") :]
    counts: dict[str, int] = {}
    causes: dict[str, str] = {}
    for line in said.splitlines()[1:]:
        words = line.split()
        if line.startswith("    ") and words:
            causes[words[0]] = line.strip().removeprefix(words[0]).strip()
        elif line.startswith("  ") and len(words) > 1 and words[1].isdigit():
            counts[words[0]] = int(words[1])
    return counts, causes


def test_materialize_command_runs_the_sample_days_and_says_where_the_tables_are(tmp_path):
    shutil.copy(REPO / "dagster.yaml", tmp_path / "dagster.yaml")
    # The first sample week; the default range (seven months) is checked in-process below.
    done = subprocess.run(
        [BIN / "flower-assets", "materialize", "--from", "2024-05-06", "--to", "2024-05-12"],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    warehouse = tmp_path / ".dagster_home" / "flower_warehouse.sqlite"
    assert f"Warehouse: {warehouse}" in done.stdout
    assert "sample data" in done.stdout
    tables = counts(warehouse)
    assert all(n > 0 for n in tables.values()), tables
    assert tables["bidding_flowers"] == tables["public_bidding_flowers"]
    # The market layer is filled too, and the report written where the command says.
    assert tables["variety_price_changes"] == tables["bidding_flowers"]
    assert tables["daily_item_prices"] > 0 and tables["category_price_index"] > 0
    report = Path(re.search(r"Market report: (\S+)", done.stdout).group(1))
    assert report.is_file() and report.parent == tmp_path / ".dagster_home" / "reports"
    html = report.read_text()
    assert "<canvas" in html and 'src="http' not in html and 'href="http' not in html
    # The run is recorded in the repo-local instance that `dagster dev` shows.
    assert (tmp_path / ".dagster_home" / "storage").is_dir()

    # A report of chosen dates, from the stored market tables.
    out = tmp_path / "week.html"
    made = subprocess.run(
        [
            BIN / "flower-assets",
            "report",
            "--from",
            "2024-05-06",
            "--to",
            "2024-05-12",
            "--out",
            out,
        ],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert made.returncode == 0, made.stderr[-3000:]
    assert str(out) in made.stdout and "2024-05-06" in out.read_text()


def test_the_default_range_is_the_whole_sample_period(monkeypatch):
    import flower_assets.cli as cli

    asked = []
    monkeypatch.setattr(cli, "_run", lambda args: asked.append((args.start, args.end)) or 0)
    assert cli.main(["materialize"]) == 0
    assert asked == [SAMPLE_PERIOD] == [(date(2024, 2, 1), date(2024, 8, 31))]


def test_dagster_cli_materializes_one_date_from_the_live_client(tmp_path, postgres_url):
    _drop_tables(postgres_url)
    with FakeAtServer(lambda day, category: day_items(day, category)) as server:
        done = subprocess.run(
            [
                BIN / "dagster",
                "asset",
                "materialize",
                "-m",
                "flower_assets",
                "--select",
                "*",
                "--partition",
                "2024-05-10",
            ],
            cwd=tmp_path,
            env=clean_env(
                FLOWER_API_KEY=TEST_KEY,
                FLOWER_API_BASE_URL=server.url,
                FLOWER_DATABASE_URL=postgres_url,
                DAGSTER_HOME=str(tmp_path),
            ),
            capture_output=True,
            text=True,
            timeout=300,
        )
        calls = list(server.requests)
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(calls) == 4 and {c["flowerGubn"] for c in calls} == {"1", "2", "3", "4"}
    assert TEST_KEY not in done.stdout + done.stderr
    with psycopg2.connect(postgres_url) as conn, conn.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM bidding_flowers WHERE auction_date = '2024-05-10'")
        expected = sum(len(day_items(date(2024, 5, 10), c)) for c in Category)
        assert cursor.fetchone()[0] == expected
    conn.close()


def run_cli(tmp_path: Path, *args: str, server: FakeAtServer, **env: str):
    """`flower-assets materialize ARGS` against the fake server, warehouse and instance in tmp_path."""
    settings_env = {
        "FLOWER_API_KEY": TEST_KEY,
        "FLOWER_API_BASE_URL": server.url,
        "FLOWER_DATABASE_URL": f"sqlite:///{tmp_path / 'warehouse.sqlite'}",
        "DAGSTER_HOME": str(tmp_path / "home"),
        **env,
    }
    (tmp_path / "home").mkdir(exist_ok=True)
    return subprocess.run(
        [BIN / "flower-assets", "materialize", *args],
        cwd=tmp_path,
        env=clean_env(**settings_env),
        capture_output=True,
        text=True,
        timeout=300,
    )


def _yesterday() -> date:
    return kst_today() - timedelta(days=1)


def _tomorrow() -> date:
    return kst_today() + timedelta(days=1)


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (lambda: ["--from", "2030-01-01", "--to", "2030-01-01"], lambda: "2030-01-01"),
        (lambda: ["--from", str(_tomorrow()), "--to", str(_tomorrow())], lambda: str(_tomorrow())),
        (
            lambda: ["--from", "2024-05-10", "--to", str(_tomorrow())],
            lambda: str(_tomorrow()),
        ),
        (lambda: ["--from", "2024-04-30", "--to", "2024-05-10"], lambda: "2024-04-30"),
    ],
    ids=["2030", "tomorrow", "to-tomorrow", "before-start-date"],
)
def test_materialize_refuses_dates_that_are_no_partition_before_any_call_or_write(
    tmp_path, args, named
):
    with FakeAtServer(lambda day, category: day_items(day, category, 0.05)) as server:
        done = run_cli(tmp_path, *args(), server=server, FLOWER_START_DATE="2024-05-01")
        calls = list(server.requests)
    assert done.returncode == 2, done.stdout + done.stderr[-3000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert named() in lines[0]
    # The valid range: FLOWER_START_DATE to yesterday in Asia/Seoul, the last partition.
    assert "2024-05-01" in lines[0] and str(_yesterday()) in lines[0], lines[0]
    assert calls == []
    assert not (tmp_path / "warehouse.sqlite").exists()


@pytest.mark.parametrize(
    ("variable", "value"),
    [("FLOWER_API_DAILY_QUOTA", "0"), ("FLOWER_API_BASE_URL", "not-a-url")],
)
def test_materialize_refuses_bad_settings_before_any_call_or_write(tmp_path, variable, value):
    with FakeAtServer(lambda day, category: day_items(day, category, 0.05)) as server:
        done = run_cli(
            tmp_path,
            "--from",
            "2024-05-10",
            "--to",
            "2024-05-10",
            server=server,
            **{variable: value},
        )
        calls = list(server.requests)
    assert done.returncode == 2, done.stdout + done.stderr[-3000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and variable in lines[0] and repr(value) in lines[0], done.stderr
    assert "resultCd" not in done.stderr
    assert calls == []
    assert not (tmp_path / "warehouse.sqlite").exists()


@pytest.mark.parametrize(
    ("variable", "value", "getter"),
    [
        ("FLOWER_API_DAILY_QUOTA", "0", settings.daily_quota),
        ("FLOWER_API_BASE_URL", "not-a-url", settings.api_base_url),
        ("FLOWER_API_BASE_URL", "ftp://example.org/api", settings.api_base_url),
        ("FLOWER_API_BASE_URL", "https:///no-host", settings.api_base_url),
    ],
)
def test_settings_refuse_bad_values_naming_the_variable(monkeypatch, variable, value, getter):
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValueError, match=variable):
        getter()


def test_settings_accept_good_values(monkeypatch):
    monkeypatch.setenv("FLOWER_API_DAILY_QUOTA", "1")
    monkeypatch.setenv("FLOWER_API_BASE_URL", "http://127.0.0.1:8080/api/returnData.api")
    assert settings.daily_quota() == 1
    assert settings.api_base_url() == "http://127.0.0.1:8080/api/returnData.api"


def test_a_failed_step_shows_the_cause_not_only_dagsters_wrapper(tmp_path):
    def fault(params: dict[str, str], number: int) -> Reply | None:
        if params.get("flowerGubn") == "1":
            return Reply(body=envelope("1", "서비스 키 오류입니다.", []))
        return None

    with FakeAtServer(lambda day, category: day_items(day, category, 0.05), fault) as server:
        done = run_cli(tmp_path, "--from", "2024-05-10", "--to", "2024-05-10", server=server)
    assert done.returncode == 1, done.stdout + done.stderr[-3000:]
    # Not only in Dagster's log lines: the CLI's own summary names the date and the cause.
    counts, causes = summary(done.stdout)
    assert counts == {"loaded": 0, "unchanged": 0, "blocked": 0, "failed": 1}, done.stdout
    assert causes["2024-05-10"].startswith(
        "the fetch failed: ApiRejectedRequest: aT API, auction date 2024-05-10, 절화 (cut flowers): resultCd 1"
    ), causes
    assert "Traceback" not in done.stdout + done.stderr
    assert TEST_KEY not in done.stdout + done.stderr


@pytest.fixture
def in_process_cli(tmp_path, monkeypatch):
    """`flower_assets.cli.main` in this process, in sample mode, on a warehouse in tmp_path."""
    for name in list(os.environ):
        if name.startswith("FLOWER_"):
            monkeypatch.delenv(name)
    url = f"sqlite:///{tmp_path / 'warehouse.sqlite'}"
    monkeypatch.setenv("FLOWER_DATABASE_URL", url)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    # The code location reads the environment when imported: import it afresh for this one.
    monkeypatch.delitem(sys.modules, "flower_assets.definitions", raising=False)
    from flower_assets import cli

    return cli, url


@pytest.fixture
def chunks_of_three(monkeypatch):
    """A backfill policy of 3 dates a run, so that a sample week takes several runs."""
    import flower_assets.defs.dated

    monkeypatch.setattr(
        flower_assets.defs.dated,
        "BACKFILL_POLICY",
        dg.BackfillPolicy.multi_run(max_partitions_per_run=3),
    )


def test_a_range_longer_than_the_backfill_policy_runs_in_chunks(
    in_process_cli, chunks_of_three, capsys
):
    cli, _ = in_process_cli
    assert cli.main(["materialize", "--from", "2024-05-06", "--to", "2024-05-12"]) == 0
    out = capsys.readouterr().out
    with dg.DagsterInstance.get() as instance:
        every_run = instance.get_runs()
    assert all(r.is_success for r in every_run)
    # The auction tables in chunks, then the market tables in the same chunks, then the report.
    jobs = sorted(r.job_name for r in every_run)
    assert jobs == ["flower_auction_job"] * 3 + ["flower_market_job"] * 3 + ["flower_report_job"]
    for job in ("flower_auction_job", "flower_market_job"):
        runs = [r for r in every_run if r.job_name == job]
        ranges = sorted(
            (
                r.tags["dagster/asset_partition_range_start"],
                r.tags["dagster/asset_partition_range_end"],
            )
            for r in runs
        )
        assert ranges == [
            ("2024-05-06", "2024-05-08"),
            ("2024-05-09", "2024-05-11"),
            ("2024-05-12", "2024-05-12"),
        ]
        for run in runs:
            assert run.run_id in out


def test_row_counts_are_counted_by_the_database_without_reading_rows(
    in_process_cli, monkeypatch, capsys
):
    cli, url = in_process_cli
    read: list[str] = []
    original = Warehouse.read_table

    def recording(self, table):
        read.append(table.name)
        return original(self, table)

    monkeypatch.setattr(Warehouse, "read_table", recording)
    assert cli.main(["materialize", "--from", "2024-05-09", "--to", "2024-05-10"]) == 0
    out = capsys.readouterr().out
    # The assets read the two small masters whole, the price index's chain and the market's
    # history (at most four rows a date each); counting reads no table.
    assert set(read) <= {
        "flower_types",
        "flowers",
        "category_price_index",
        "record_digests",
        "market_builds",
    }, sorted(set(read))
    with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
        for table in TABLES:
            n = conn.execute(f"SELECT count(*) FROM {table.name}").fetchone()[0]
            line = next(line for line in out.splitlines() if line.split()[:1] == [table.name])
            assert int(line.split()[1]) == n, (table.name, line, n)


def test_a_failed_chunk_holds_back_no_later_chunk_and_says_why(
    in_process_cli, chunks_of_three, capsys
):
    cli, _ = in_process_cli
    # Sample mode serves 2024-02-01…08-31 only: the dates from 09-01 on fail, each on its own.
    assert cli.main(["materialize", "--from", "2024-08-26", "--to", "2024-09-05"]) == 1
    captured = capsys.readouterr()
    with dg.DagsterInstance.get() as instance:
        runs = sorted(
            instance.get_runs(filters=dg.RunsFilter(job_name="flower_auction_job")),
            key=lambda r: r.tags["dagster/asset_partition_range_start"],
        )
    assert [r.tags["dagster/asset_partition_range_start"] for r in runs] == [
        "2024-08-26",
        "2024-08-29",
        "2024-09-01",
        "2024-09-04",
    ]
    assert [r.is_success for r in runs] == [True, True, False, False]
    assert f"Run 3/4 {runs[2].run_id} (2024-09-01 to 2024-09-03, 3 dates) failed in " in (
        captured.err
    )
    counts, causes = summary(captured.out)
    assert counts == {"loaded": 6, "unchanged": 0, "blocked": 0, "failed": 5}, captured.out
    failed = ("2024-09-01", "2024-09-02", "2024-09-03", "2024-09-04", "2024-09-05")
    assert sorted(causes) == list(failed), causes
    assert all(causes[day].startswith("the fetch failed: ") for day in failed), causes
    assert "2024-09-01 is outside it" in causes["2024-09-01"], causes
    assert (
        "sample mode serves only the auction dates 2024-02-01 to 2024-08-31"
        in (causes["2024-09-01"])
    )
    assert "flower-assets materialize --from 2024-09-01 --to 2024-09-05" in captured.out
    assert captured.err.strip().splitlines()[-1] == (
        "flower-assets materialize: 5 of 11 auction dates not loaded (5 failed); "
        "see the summary above."
    )


def report(cli, first: str, last: str, out: Path) -> int:
    return cli.main(["report", "--from", first, "--to", last, "--out", str(out)])


def test_report_refuses_a_range_of_an_empty_warehouse(in_process_cli, capsys, tmp_path):
    cli, _ = in_process_cli
    out = tmp_path / "report.html"
    assert report(cli, "2024-04-01", "2024-04-30", out) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("flower-assets report: ") and "not loaded" in lines[0], lines
    assert "2024-04-01 … 2024-04-30" in lines[0], lines
    assert not out.exists()  # never "0 auction dates … No trades in this period"


def test_report_says_which_part_of_a_range_is_loaded_and_refuses_a_range_never_loaded(
    in_process_cli, capsys, tmp_path
):
    cli, _ = in_process_cli
    # Sunday 2024-04-28 (no auction) … Wednesday 2024-05-01.
    assert cli.main(["materialize", "--from", "2024-04-28", "--to", "2024-05-01"]) == 0
    capsys.readouterr()
    out = tmp_path / "report.html"
    # A month before anything was loaded, and one after: refused, not "no trades".
    for first, last in (("2023-01-01", "2023-01-31"), ("2024-06-01", "2024-06-30")):
        assert report(cli, first, last, out) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and f"{first} … {last}" in lines[0], lines
        assert "not loaded" in lines[0], lines
        assert not out.exists()

    assert report(cli, "2024-04-26", "2024-05-06", out) == 0
    said = capsys.readouterr().out
    assert "loaded: 2024-04-28 … 2024-05-01" in said, said
    assert "not loaded: 2024-04-26 … 2024-04-27, 2024-05-02 … 2024-05-06" in said, said
    page = out.read_text()
    header = page[page.index("<header>") : page.index("</header>")]
    assert (
        "Loaded: 2024-04-28 … 2024-05-01; not loaded: 2024-04-26 … 2024-04-27, "
        "2024-05-02 … 2024-05-06" in header
    ), header
    # The Sunday is loaded and had no auction; the dates not loaded are not closed days.
    assert "3 auction dates" in header and "1 without an auction" in header, header
    assert "7 dates not loaded" in header, header
