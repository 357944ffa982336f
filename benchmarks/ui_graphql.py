"""The GraphQL the Dagster UI sends for the catalog, asset, partitions and check pages.

The documents are not copied here: they are read from the installed `dagster-webserver`'s own
JavaScript bundles (`dagster_webserver/webapp/build/_next/static`), where every query and
fragment is a string literal, and each query is sent with the fragments it uses. So the
benchmark always sends exactly what the UI of the installed version sends, field for field.

Which queries a page issues, and with which variables, was read from the UI's sources (the
bundles' source maps, `ui-core/src/assets/...`) for dagster-webserver 1.13.27:

- catalog (`/assets`, `AssetCatalogTableV2` via `useAllAssets` and `useAssetsHealthData`):
  the code location's asset list, the asset records, the health of every asset.
- asset page (`/assets/<key>`, `AssetView`): the definition and the live data
  (`useAssetLiveData`, which includes every check's partition statuses) on every tab of the
  asset, then the overview's latest materialization metadata and partition health.
- partitions page (`?view=partitions&partition=<date>`): the same definition and live data,
  partition health, the events of the selected partition, its latest materialization, its
  staleness.
- checks page (`?view=checks`, `AssetChecks`): the same definition and live data, the checks
  table with every check's partition statuses, the selected check's execution history (pages
  of 30), its Partitions tab and one partition's evaluations.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import dagster_webserver

BUNDLES = Path(dagster_webserver.__file__).parent / "webapp" / "build" / "_next" / "static"

# A JS string literal holding GraphQL: the UI's documents are template literals compiled to
# "\n  query Name(…) {…}" strings, fragments interpolated as separate literals.
_LITERAL = re.compile(
    r'"((?:[^"\\\n]|\\.)*?\\n\s*(?:query|fragment|mutation|subscription) (?:[^"\\\n]|\\.)*)"'
)
_DEFINITION = re.compile(r"\b(query|fragment|mutation|subscription) ([A-Za-z_]\w*)")
_SPREAD = re.compile(r"\.\.\.\s*(?!on\b)([A-Za-z_]\w*)")


@cache
def ui_definitions() -> dict[str, str]:
    """Every named query and fragment of the UI's bundles, by name."""
    definitions: dict[str, str] = {}
    for bundle in sorted(BUNDLES.rglob("*.js")):
        for literal in _LITERAL.finditer(bundle.read_text(errors="replace")):
            text = json.loads(f'"{literal.group(1)}"')
            position = 0
            while match := _DEFINITION.search(text, position):
                opening = text.find("{", match.end())
                if opening < 0:
                    break
                depth, end = 0, opening
                for end in range(opening, len(text)):
                    depth += {"{": 1, "}": -1}.get(text[end], 0)
                    if depth == 0:
                        break
                definitions.setdefault(match.group(2), text[match.start() : end + 1])
                position = end + 1
    if not definitions:
        raise RuntimeError(f"no GraphQL found in the UI bundles under {BUNDLES}")
    return definitions


def ui_document(name: str) -> str:
    """The query `name` as the UI sends it: the query followed by every fragment it uses."""
    definitions = ui_definitions()
    if name not in definitions:
        raise KeyError(f"the installed UI has no GraphQL definition named {name}")
    order, pending = [], [name]
    while pending:
        current = pending.pop(0)
        if current in order:
            continue
        order.append(current)
        pending += _SPREAD.findall(definitions[current])
    return "\n\n".join(definitions[part] for part in order)


@dataclass(frozen=True)
class Target:
    """What the pages are opened on."""

    location: str
    asset: str
    all_assets: tuple[str, ...]
    partition: str
    check: str


@dataclass(frozen=True)
class UiQuery:
    name: str
    pages: tuple[str, ...]
    variables: Callable[[Target], dict]


def _key(asset: str) -> dict:
    return {"path": [asset]}


ASSET_TABS = ("asset", "partitions", "checks")

# In page order: a user opening the catalog, an asset, its partitions, then its checks. A query
# several pages issue is listed once, with every page it belongs to, and timed once a pass.
UI_QUERIES = (
    UiQuery("LocationWorkspaceAssetsQuery", ("catalog",), lambda t: {"name": t.location}),
    UiQuery("AssetRecordsQuery", ("catalog",), lambda t: {"limit": 1000}),
    UiQuery(
        "AssetHealthQuery", ("catalog",), lambda t: {"assetKeys": [_key(a) for a in t.all_assets]}
    ),
    # AssetView issues these two on every tab of an asset: overview, partitions, checks.
    UiQuery("AssetViewDefinitionQuery", ASSET_TABS, lambda t: {"assetKey": _key(t.asset)}),
    UiQuery("AssetGraphLiveQuery", ASSET_TABS, lambda t: {"assetKeys": [_key(t.asset)]}),
    UiQuery("AssetOverviewMetadataEventsQuery", ("asset",), lambda t: {"assetKey": _key(t.asset)}),
    UiQuery("PartitionHealthQuery", ("asset", "partitions"), lambda t: {"assetKey": _key(t.asset)}),
    UiQuery(
        "AssetPartitionDetailQuery",
        ("partitions",),
        lambda t: {"assetKey": _key(t.asset), "partitionKey": t.partition},
    ),
    UiQuery(
        "AssetPartitionEventsQuery",
        ("partitions",),
        lambda t: {"assetKey": _key(t.asset), "partitions": [t.partition]},
    ),
    UiQuery(
        "AssetPartitionStaleQuery",
        ("partitions",),
        lambda t: {"assetKey": _key(t.asset), "partitionKey": t.partition},
    ),
    UiQuery("AssetChecksQuery", ("checks",), lambda t: {"assetKey": _key(t.asset)}),
    UiQuery(
        "AssetCheckDetailsQuery",
        ("checks",),
        # The UI's PAGE_SIZE (AutoMaterializePolicyPage/useEvaluationsQueryResult) is 30.
        lambda t: {"assetKey": _key(t.asset), "checkName": t.check, "limit": 30},
    ),
    UiQuery(
        "AssetCheckPartitionHealthQuery",
        ("checks",),
        lambda t: {"assetKey": _key(t.asset), "checkName": t.check},
    ),
    UiQuery(
        "AssetCheckPartitionDetailQuery",
        ("checks",),
        lambda t: {"assetKey": _key(t.asset), "checkName": t.check, "partitionKey": t.partition},
    ),
)
PAGES = ("catalog", "asset", "partitions", "checks")
QUERIES_BY_NAME = {query.name: query for query in UI_QUERIES}
