"""The Dagster glue: assets, checks, partitions, resources, schedules, sensors, alerts."""
