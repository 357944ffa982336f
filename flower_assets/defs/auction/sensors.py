"""The freshness checks' sensor: with a service key, whether the latest auction date arrived."""

import dagster as dg

from flower_assets.defs.auction.checks import freshness_checks

freshness_sensors = (
    [
        dg.build_sensor_for_freshness_checks(
            freshness_checks=freshness_checks, default_status=dg.DefaultSensorStatus.RUNNING
        )
    ]
    if freshness_checks
    else []
)
