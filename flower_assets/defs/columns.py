"""Dagster metadata derived from the table models: the Columns tab and table facts."""

from __future__ import annotations

import dagster as dg

from flower_assets.warehouse.schemas import Table


def column_schema(table: Table) -> dg.TableSchema:
    """The table's columns as Dagster shows them, from the pandera model."""
    unique_columns = {cols[0] for cols in table.meta.get("unique", []) if len(cols) == 1}
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                name=name,
                type=str(column.dtype),
                description=column.description,
                constraints=dg.TableColumnConstraints(
                    nullable=column.nullable,
                    unique=column.unique
                    or name in unique_columns
                    or name == table.meta.get("primary_key"),
                ),
            )
            for name, column in table.schema.columns.items()
        ]
    )


def definition_metadata(table: Table) -> dict[str, object]:
    """Metadata attached to the asset definition, shown before the first run."""
    return {
        "dagster/column_schema": column_schema(table),
        "dagster/table_name": table.name,
    }
