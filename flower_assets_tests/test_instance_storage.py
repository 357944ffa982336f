"""The embedded instance's event log (dagster.yaml): pooled, and shared by every process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import dagster as dg

from flower_assets.instance_storage import PooledSqliteEventLogStorage

from .conftest import REPO


def embedded_home(tmp_path: Path) -> Path:
    config = (REPO / "dagster.yaml").read_text().replace(".dagster_home", str(tmp_path))
    (tmp_path / "dagster.yaml").write_text(config)
    return tmp_path


def test_events_one_instance_writes_are_read_by_another_process(tmp_path: Path) -> None:
    home = embedded_home(tmp_path)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert isinstance(instance.event_log_storage, PooledSqliteEventLogStorage)
        instance.report_runless_asset_event(
            dg.AssetMaterialization("bidding_flowers", partition="2024-05-10")
        )
        # The daemon and the webserver are other processes with engines of their own.
        reader = (
            "import dagster as dg, sys\n"
            f"with dg.DagsterInstance.from_config({str(home)!r}) as instance:\n"
            "    keys = instance.get_materialized_partitions(dg.AssetKey('bidding_flowers'))\n"
            "    print(sorted(keys))\n"
        )
        done = subprocess.run(
            [sys.executable, "-c", reader], capture_output=True, text=True, check=True
        )
        assert done.stdout.strip() == "['2024-05-10']"
        # And this engine sees what another process wrote.
        writer = (
            "import dagster as dg\n"
            f"with dg.DagsterInstance.from_config({str(home)!r}) as instance:\n"
            "    instance.report_runless_asset_event(\n"
            "        dg.AssetMaterialization('bidding_flowers', partition='2024-05-11'))\n"
        )
        subprocess.run([sys.executable, "-c", writer], capture_output=True, check=True)
        assert instance.get_materialized_partitions(dg.AssetKey("bidding_flowers")) == {
            "2024-05-10",
            "2024-05-11",
        }
