"""The market report: one self-contained HTML file for a date range (pure; no I/O but the package).

`render_report` turns the market tables of the dates first..last into one HTML document that
opens with no network at all: the styles, the data and the charting library are inlined, and
nothing is fetched (no CDN, no web font, no link). It shows
(a) the category price indices over the period, rebased to 100 on each category's first auction
    date in the period, with matched pairs and quantity share in the tooltips and a table;
(b) the top risers and fallers per category;
(c) the traded quantity by weekday per category;
(d) a seasonal view around the graduation season and Parents' Day, the peak shaded; a note
    when the period covers neither.
Dates the warehouse has not loaded (`coverage.Coverage`) are unknown, never closed days: the
header names them in ranges, and no section counts them.

Where each part lives:
- `report_data.py`: the numbers of every section, in pure polars functions (the risers-and-
  fallers rule and the seasonal peaks are described there);
- this module: the charts' data (JSON read by the page's script) and the templates' context;
- `report_templates/`: the page (`report.html.j2` and one template per section, Jinja2 with
  autoescaping), its styles (`report.css`) and its script (`report.js`, standalone JavaScript
  that reads the `report-data` JSON block), inlined into the page as they are.

Why Chart.js (4.x, vendored in `vendor/`, MIT): it is the most widely used and actively
maintained canvas charting library, has no dependencies, and its one UMD file (about 205 KB
minified) inlines as it is; it has line and bar charts, tooltips, legends, category axes and a
plugin hook (used to shade the peaks) built in, which is all this report needs, and
`Chart.getChart(canvas)` lets a test inspect each rendered chart. Apache ECharts does more but
is about 1 MB; uPlot is 50 KB but has no bar charts or tooltips without plugins of our own. The
vendored file is the npm package's `dist/chart.umd.min.js`, unchanged; its source-map comment is
dropped when it is inlined.
"""

from __future__ import annotations

from datetime import date
from functools import cache
from importlib import resources

import jinja2
import polars as pl

from flower_assets.market import report_data as data
from flower_assets.market.coverage import Coverage, NothingLoaded, runs_text
from flower_assets.source.categories import Category

CHART_JS_VERSION = "4.6.1"
TEMPLATES = "report_templates"  # package directory of flower_assets.market

ENGLISH = {c.korean_name: c.english_name for c in Category}
CODES = {c.korean_name: c.code for c in Category}  # the API's flowerGubn codes 1-4
UNITS = {"절화": "bundles (속)", "관엽": "pots (분)", "난": "pots (분)", "춘란": "pots (분)"}
WEEKDAYS = ["월 Mon", "화 Tue", "수 Wed", "목 Thu", "금 Fri", "토 Sat", "일 Sun"]


def _package_text(path: str) -> str:
    return resources.files("flower_assets.market").joinpath(path).read_text(encoding="utf-8")


def _inlinable(text: str, name: str) -> str:
    """`text` as it is, if it cannot end the <script> or <style> element it is inlined in."""
    lowered = text.lower()
    if "</script" in lowered or "</style" in lowered:
        raise ValueError(f"{name} holds '</script' or '</style' and cannot be inlined")
    return text


@cache
def chart_js() -> str:
    """The vendored Chart.js UMD file, ready to inline (no source-map comment)."""
    source = _package_text("vendor/chart.umd.min.js")
    lines = [line for line in source.splitlines() if not line.startswith("//# sourceMappingURL")]
    return _inlinable("\n".join(lines), "the vendored Chart.js")


@cache
def static_file(name: str) -> str:
    """`report_templates/name` (the page's CSS or JavaScript), ready to inline."""
    return _inlinable(_package_text(f"{TEMPLATES}/{name}"), name)


# ---------------------------------------------------------------------------------------------
# Formatting: the template filters


def label(category: str) -> str:
    """`절화 (cut flowers)`."""
    return f"{category} ({ENGLISH.get(category, category)})"


def thousands(value: float | None) -> str:
    return "–" if value is None else f"{round(value):,}"


def decimal(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def percent(value: float | None) -> str:
    return "–" if value is None else f"{value:+,.1f}%"


def signed(value: int) -> str:
    return f"{value:+,}"


def month_day(day: date) -> str:
    return f"{day:%m-%d}"


def sentence(text: str) -> str:
    """The text with its first letter upper-case (Jinja's `capitalize` lowers the rest)."""
    return text[:1].upper() + text[1:]


@cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("flower_assets.market", TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        label=label,
        thousands=thousands,
        decimal=decimal,
        percent=percent,
        signed=signed,
        month_day=month_day,
        runs=runs_text,
        sentence=sentence,
        unit=lambda category: UNITS.get(category, ""),
    )
    # `tojson` (the charts' data block) keeps the Korean names readable and the JSON compact; it
    # escapes <, >, & and ' whatever the arguments, so the data cannot end its <script> element.
    env.policies["json.dumps_kwargs"] = {"ensure_ascii": False, "separators": (",", ":")}
    return env


# ---------------------------------------------------------------------------------------------
# The charts' data: one spec per canvas, read by report.js (`kinds` there draws each kind)


def _rounded(values: list, digits: int) -> list:
    return [None if v is None else round(v, digits) for v in values]


def index_chart(index: pl.DataFrame, categories: list[str]) -> dict:
    """`index`: `report_data.rebased_index`, not empty."""
    days = sorted(set(index["auction_date"].to_list()))
    datasets = []
    for category in categories:
        own = index.filter(pl.col("flower_gubn") == category)
        if own.height:
            datasets.append(
                {
                    "label": label(category),
                    "category": category,
                    "data": _rounded(data.aligned(own, days, "value"), 2),
                    "matched": data.aligned(own, days, "matched_pairs"),
                    "share": _rounded(data.aligned(own, days, "quantity_share"), 4),
                }
            )
    return {
        "id": "chart-index",
        "kind": "index",
        "labels": [d.isoformat() for d in days],
        "datasets": datasets,
    }


def weekday_charts(profile: data.WeekdayProfile, categories: list[str]) -> list[dict]:
    labels = [WEEKDAYS[d - 1] for d in profile.weekdays]
    numbers = {category: n for n, category in enumerate(categories, 1)}
    return [
        {
            "id": f"chart-weekday-{CODES.get(v.category, f'x{numbers[v.category]}')}",
            "kind": "weekday",
            "title": f"{label(v.category)}: {UNITS.get(v.category, '')}",
            "labels": labels,
            "datasets": [
                {
                    "label": label(v.category),
                    "category": v.category,
                    "data": [q if n else None for q, n in zip(v.quantity, v.dates, strict=True)],
                    "dates": v.dates,
                }
            ],
        }
        for v in profile.categories
    ]


def season_charts(window: data.PeakWindow, single_year: bool) -> tuple[dict, dict]:
    """The volume and the index chart of a peak's window (`window.days` not empty)."""
    peak = window.peak
    common = {
        "labels": [
            f"{d} (어버이날)" if peak.focus and d == peak.focus else d.isoformat()
            for d in window.days
        ],
        "singleYear": single_year,
        "shade": window.peak_positions,
    }
    volume = [
        {
            "label": label(s.category),
            "category": s.category,
            "data": s.volume,
            "quantity": s.quantity,
            "unit": UNITS.get(s.category, ""),
        }
        for s in window.series
        if s.volume is not None
    ]
    lines = [
        {"label": label(s.category), "category": s.category, "data": _rounded(s.index, 2)}
        for s in window.series
        if s.index is not None
    ]
    return (
        {"id": f"chart-{peak.key}-volume", "kind": "season-volume", "datasets": volume, **common},
        {"id": f"chart-{peak.key}-index", "kind": "season-index", "datasets": lines, **common},
    )


def ranked_movers(table: pl.DataFrame, categories: list[str]) -> dict[str, dict[str, list]]:
    """`report_data.movers`' rows as {category: {"rise": rows, "fall": rows}}, rows as dicts."""
    return {
        category: {
            direction: table.filter(flower_gubn=category, direction=direction).to_dicts()
            for direction in ("rise", "fall")
        }
        for category in categories
    }


# ---------------------------------------------------------------------------------------------
# The page


def render_report(
    index: pl.DataFrame,
    item_prices: pl.DataFrame,
    variety_changes: pl.DataFrame,
    first: date,
    last: date,
    coverage: Coverage | None = None,
) -> str:
    """The whole HTML document of the market report for the auction dates first..last.

    `index`: `price_index.index_values(chain_links(...))`; `item_prices`:
    `prices.daily_item_prices`; `variety_changes`: `prices.variety_price_changes`. Rows outside
    first..last are ignored. `coverage`: which dates are loaded (`coverage.report_coverage`);
    None: every date. Raises `NothingLoaded` when none is.
    """
    if last < first:
        raise ValueError(f"the report's last date {last} is before its first {first}")
    coverage = coverage or Coverage.everything(first, last)
    if (coverage.first, coverage.last) != (first, last):
        raise ValueError(f"coverage of {coverage.first}…{coverage.last}, not {first}…{last}")
    span = coverage.span  # the first and the last loaded date
    if span is None:
        raise NothingLoaded(
            f"{first} … {last} is not loaded: no date of it is in the warehouse's auction "
            "records and market tables (never fetched, or held back by a blocking check), so "
            "the report could only say what it does not know; load some of them first "
            "(flower-assets materialize)"
        )
    period = pl.col("auction_date").is_between(first, last)
    index = data.rebased_index(index, first, last)
    item_prices = item_prices.filter(period)
    variety_changes = variety_changes.filter(period)
    categories = data.categories_in(index, item_prices, variety_changes)
    index_section, index_charts = _index_section(index, categories, coverage)
    weekday_section, weekday_specs = _weekday_section(item_prices, categories, coverage)
    peaks, season_specs = _season_section(index, item_prices, categories, coverage)
    context = {
        "first": first,
        "last": last,
        "coverage": coverage,
        "counts": data.coverage_counts(coverage, item_prices),
        "totals": data.category_totals(index, item_prices, categories),
        "index": index_section,
        "movers": _movers_section(variety_changes, categories, coverage, span),
        "weekday": weekday_section,
        "peaks": peaks,
        "data": {
            "charts": index_charts + weekday_specs + season_specs,
            "singleYear": first.year == last.year,
        },
        "css": static_file("report.css"),
        "script": static_file("report.js"),
        "chart_js": chart_js(),
        "chart_js_version": CHART_JS_VERSION,
    }
    return environment().get_template("report.html.j2").render(context)


# Each section's context for its template, and the specs of its charts (in the page's order).


def _index_section(
    index: pl.DataFrame, categories: list[str], coverage: Coverage
) -> tuple[dict | None, list[dict]]:
    if index.is_empty():
        return None, []
    chart = index_chart(index, categories)
    days = index["auction_date"]
    section = {
        "chart": chart,
        "not_loaded": coverage.not_loaded_in(days.min(), days.max()),
        "summaries": data.index_summaries(index, categories),
    }
    return section, [chart]


def _movers_section(
    variety_changes: pl.DataFrame,
    categories: list[str],
    coverage: Coverage,
    span: tuple[date, date],
) -> dict:
    """`span`: the first and last loaded date; risers and fallers compare its fortnights."""
    windows = data.mover_windows(*span)
    return {
        "span": span,
        "windows": windows,
        "not_loaded": [day for w in windows or () for day in coverage.not_loaded_in(*w)],
        "ranked": ranked_movers(data.movers(variety_changes, *span), categories),
        "min_quantity": data.MIN_QUANTITY,
        "top": data.MOVERS_TOP,
    }


def _weekday_section(
    prices: pl.DataFrame, categories: list[str], coverage: Coverage
) -> tuple[dict, list[dict]]:
    profile = data.weekday_profile(prices, categories)
    charts = weekday_charts(profile, categories)
    section = {
        "empty": prices.is_empty(),
        "labels": [WEEKDAYS[d - 1] for d in profile.weekdays],
        "rows": list(zip(profile.categories, charts, strict=True)),
        "loaded": data.loaded_weekdays(coverage, profile.weekdays),
    }
    return section, charts


def _season_section(
    index: pl.DataFrame, prices: pl.DataFrame, categories: list[str], coverage: Coverage
) -> tuple[list[dict], list[dict]]:
    first, last = coverage.first, coverage.last
    peaks, charts = [], []
    for window in data.peak_windows(index, prices, categories, first, last, coverage):
        # Charts only where there is something to draw; the template says why not otherwise.
        shown = window.any_loaded and window.days
        drawn = season_charts(window, first.year == last.year) if shown else None
        charts += drawn or ()
        peaks.append({"window": window, "charts": drawn})
    return peaks, charts
