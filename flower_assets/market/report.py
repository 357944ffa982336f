"""The market report: one self-contained HTML file for a date range (pure; no I/O but the package).

`render_report` turns the market tables of the dates first..last into one HTML document that
opens with no network at all: the styles, the data and the charting library are inlined, and
nothing is fetched (no CDN, no web font, no link). It shows
(a) the category price indices over the period, rebased to 100 on each category's first auction
    date in the period, with matched pairs and quantity share in the tooltips and a table;
(b) the top risers and fallers per category (`movers`, rule below);
(c) the traded quantity by weekday per category;
(d) a seasonal view around the peaks (`seasonal_windows`): the graduation season (February,
    shown when the period holds any day of it) and Parents' Day (the run-up week May 1 … 8,
    shown when the period holds May 8), each with two weeks either side, the peak shaded; a
    note when the period covers neither.

Dates the warehouse has not loaded (`coverage.Coverage`) are unknown, never closed days: the
header names them in ranges, the risers and fallers compare the loaded dates' first and last
fortnights, and the weekday and seasonal sections count and name only loaded dates.

Risers and fallers (`movers`): variety-and-grade pairs ranked by the change of their
quantity-weighted average price, Σ(avg_price × quantity) / Σ quantity rounded half up to whole
won, from the period's first fortnight (first … first+13) to its last (last−13 … last); for a
period shorter than four weeks, its first and last halves. A pair qualifies only when it traded
in both fortnights and in each of them its quantity is at least the median quantity of its
category's pairs in that fortnight (the busier half) and at least `MIN_QUANTITY`, so a pair that
sold a bundle or two cannot top the list. Risers rose (change > 0), fallers fell (< 0); ties go
to the larger quantity of both fortnights together.

Why Chart.js (4.x, vendored in `vendor/`, MIT): it is the most widely used and actively
maintained canvas charting library, has no dependencies, and its one UMD file (about 205 KB
minified) inlines as it is; it has line and bar charts, tooltips, legends, category axes and a
plugin hook (used to shade the peaks) built in, which is all this report needs, and
`Chart.getChart(canvas)` lets a test inspect each rendered chart. Apache ECharts does more but is about 1 MB; uPlot is 50 KB but has no bar
charts or tooltips without plugins of our own. The vendored file is the npm package's
`dist/chart.umd.min.js`, unchanged; its source-map comment is dropped when it is inlined.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from datetime import date, timedelta
from functools import cache
from importlib import resources

import polars as pl

from flower_assets.market.coverage import Coverage, NothingLoaded, runs_text
from flower_assets.market.prices import won
from flower_assets.source.categories import Category

CHART_JS_VERSION = "4.6.1"
MOVERS_TOP = 5
FORTNIGHT_DAYS = 14
MIN_QUANTITY = 2
PARENTS_DAY = (5, 8)
PARENTS_DAY_RUN_UP = 8  # the peak: May 1 … May 8, when carnations are bought
SHOULDER_DAYS = 14  # the seasonal charts show two weeks either side of a peak

CATEGORIES = [c.korean_name for c in Category]
ENGLISH = {c.korean_name: c.english_name for c in Category}
CODES = {c.korean_name: c.code for c in Category}  # the API's flowerGubn codes 1-4
COLOURS = {"절화": "#c2255c", "관엽": "#2b8a3e", "난": "#6741d9", "춘란": "#d9480f"}
UNITS = {"절화": "bundles (속)", "관엽": "pots (분)", "난": "pots (분)", "춘란": "pots (분)"}
WEEKDAYS = ["월 Mon", "화 Tue", "수 Wed", "목 Thu", "금 Fri", "토 Sat", "일 Sun"]
FONTS = (
    'system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans CJK KR", "Noto Sans KR", '
    '"Apple SD Gothic Neo", "Malgun Gothic", "Nanum Gothic", sans-serif'
)

MOVER_COLUMNS = {
    "flower_gubn": pl.String,
    "direction": pl.String,
    "rank": pl.Int64,
    "item_name": pl.String,
    "variety_name": pl.String,
    "grade": pl.String,
    "start_price": pl.Int64,
    "end_price": pl.Int64,
    "change": pl.Int64,
    "change_pct": pl.Float64,
    "start_quantity": pl.Int64,
    "end_quantity": pl.Int64,
}


@cache
def chart_js() -> str:
    """The vendored Chart.js UMD file, ready to inline (no source-map comment)."""
    source = (
        resources.files("flower_assets.market")
        .joinpath("vendor/chart.umd.min.js")
        .read_text(encoding="utf-8")
    )
    lines = [line for line in source.splitlines() if not line.startswith("//# sourceMappingURL")]
    script = "\n".join(lines)
    if "</script" in script.lower():  # would end the inline <script> early
        raise ValueError("the vendored Chart.js holds '</script' and cannot be inlined")
    return script


# ---------------------------------------------------------------------------------------------
# The tables behind the sections (pure polars)


def mover_windows(first: date, last: date) -> tuple[tuple[date, date], tuple[date, date]] | None:
    """The first and the last fortnight of first..last (halves below four weeks); None if < 2 days."""
    span = (last - first).days + 1
    days = FORTNIGHT_DAYS if span >= 2 * FORTNIGHT_DAYS else span // 2
    if days < 1:
        return None
    return (first, first + timedelta(days=days - 1)), (last - timedelta(days=days - 1), last)


def _window_prices(changes: pl.DataFrame, start: date, end: date, prefix: str) -> pl.DataFrame:
    quantity = pl.col("quantity")
    window = (
        changes.filter(pl.col("auction_date").is_between(start, end))
        .group_by("flower_gubn", "flower_id", "grade")
        .agg(
            pl.col("item_name").first(),
            pl.col("variety_name").first(),
            quantity.sum(),
            (pl.col("avg_price") * quantity).sum().alias("value"),
        )
    )
    busy = (quantity >= quantity.median().over("flower_gubn")) & (quantity >= MIN_QUANTITY)
    return window.select(
        "flower_gubn",
        "flower_id",
        "grade",
        "item_name",
        "variety_name",
        won(pl.col("value"), quantity).alias(f"{prefix}_price"),
        quantity.alias(f"{prefix}_quantity"),
        busy.alias(f"{prefix}_busy"),
    )


def movers(
    variety_changes: pl.DataFrame, first: date, last: date, top: int = MOVERS_TOP
) -> pl.DataFrame:
    """The top risers and fallers per category (`MOVER_COLUMNS`; the rule: module docstring)."""
    windows = mover_windows(first, last)
    if windows is None or variety_changes.is_empty():
        return pl.DataFrame(schema=MOVER_COLUMNS)
    (s0, s1), (e0, e1) = windows
    start = _window_prices(variety_changes, s0, s1, "start")
    end = _window_prices(variety_changes, e0, e1, "end").drop("item_name", "variety_name")
    pairs = (
        start.join(end, on=["flower_gubn", "flower_id", "grade"])
        .filter(pl.col("start_busy") & pl.col("end_busy") & (pl.col("start_price") > 0))
        .with_columns((pl.col("end_price") - pl.col("start_price")).alias("change"))
        .with_columns(
            (pl.col("change") / pl.col("start_price") * 100).alias("change_pct"),
            (pl.col("start_quantity") + pl.col("end_quantity")).alias("_quantity"),
        )
    )
    ranked = []
    for direction, sign in (("rise", 1), ("fall", -1)):
        chosen = (
            pairs.filter(pl.col("change") * sign > 0)
            .with_columns((pl.col("change_pct") * sign).alias("_size"))
            .sort(
                ["flower_gubn", "_size", "_quantity", "item_name", "variety_name", "grade"],
                descending=[False, True, True, False, False, False],
            )
            .group_by("flower_gubn", maintain_order=True)
            .head(top)
            .with_columns(
                pl.lit(direction).alias("direction"),
                (pl.int_range(pl.len()).over("flower_gubn") + 1).cast(pl.Int64).alias("rank"),
            )
        )
        ranked.append(chosen.select(list(MOVER_COLUMNS)))
    return pl.concat(ranked).cast(MOVER_COLUMNS)


@dataclass(frozen=True)
class Peak:
    """A seasonal peak the period covers: its days, and the window shown around them."""

    key: str
    title: str
    peak_start: date  # the peak itself: February, or the run-up week May 1 … May 8
    peak_end: date
    start: date  # the window shown: the peak and two weeks either side, clipped to the period
    end: date
    full_start: date  # the window before clipping
    full_end: date
    focus: date | None  # the day itself (May 8), named on the charts' date axis

    @property
    def partial(self) -> bool:
        return (self.start, self.end) != (self.full_start, self.full_end)


def seasonal_windows(first: date, last: date) -> list[Peak]:
    """The peaks first..last covers: February (any day of it), Parents' Day (May 8 itself)."""
    shoulder = timedelta(days=SHOULDER_DAYS)
    peaks = []
    for year in range(first.year, last.year + 1):
        february = (date(year, 2, 1), date(year, 3, 1) - timedelta(days=1))
        parents_day = date(year, *PARENTS_DAY)
        candidates = [
            (
                first <= february[1] and february[0] <= last,
                f"graduation-{year}",
                f"Graduation season (졸업 시즌), February {year}",
                february,
                None,
            ),
            (
                first <= parents_day <= last,
                f"parents-day-{year}",
                f"Parents' Day (어버이날), May 8, {year}",
                (parents_day - timedelta(days=PARENTS_DAY_RUN_UP - 1), parents_day),
                parents_day,
            ),
        ]
        for covered, key, title, (peak_start, peak_end), focus in candidates:
            if covered:
                full = (peak_start - shoulder, peak_end + shoulder)
                window = (max(first, full[0]), min(last, full[1]))
                peaks.append(Peak(key, title, peak_start, peak_end, *window, *full, focus))
    return sorted(peaks, key=lambda peak: peak.start)


def rebased_index(index: pl.DataFrame, first: date, last: date) -> pl.DataFrame:
    """The index of first..last, 100 on each category's first auction date in the period."""
    return (
        index.filter(pl.col("auction_date").is_between(first, last))
        .sort("flower_gubn", "auction_date")
        .with_columns(
            (pl.col("index_value") / pl.col("index_value").first().over("flower_gubn") * 100).alias(
                "value"
            )
        )
    )


# ---------------------------------------------------------------------------------------------
# Formatting


def _esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def _int(value: float | int | None) -> str:
    return "–" if value is None else f"{round(value):,}"


def _dec(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:+,.1f}%"


def _label(category: str) -> str:
    return f"{category} ({ENGLISH.get(category, category)})"


def _categories(*frames: pl.DataFrame) -> list[str]:
    seen = set()
    for frame in frames:
        if "flower_gubn" in frame.columns:
            seen.update(frame["flower_gubn"].unique().to_list())
    return [c for c in CATEGORIES if c in seen] + sorted(seen - set(CATEGORIES))


def _table(headers: list[str], rows: list[list[str]], attrs: str = "") -> str:
    head = "".join(f"<th>{h}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table {attrs}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _canvas(chart_id: str, height: int, label: str) -> str:
    return (
        f'<div class="chart" style="height:{height}px"><canvas id="{_esc(chart_id)}" '
        f'role="img" aria-label="{_esc(label)}"></canvas></div>'
    )


def _aligned(frame: pl.DataFrame, labels: list[str], column: str) -> list:
    values = dict(
        zip(
            [d.isoformat() for d in frame["auction_date"].to_list()],
            frame[column].to_list(),
            strict=True,
        )
    )
    return [values.get(label) for label in labels]


# ---------------------------------------------------------------------------------------------
# Sections


def _coverage(coverage: Coverage, auction_dates: int) -> str:
    """Which dates are loaded: a date not loaded is unknown, never a day without an auction."""
    quiet = len(coverage.loaded) - auction_dates
    if coverage.complete:
        text = (
            f'<p class="coverage" id="coverage">Every date of the period is loaded: '
            f"{auction_dates:,} auction dates, {quiet:,} without an auction.</p>"
        )
    else:
        missing = len(coverage.not_loaded)
        said = coverage.text[:1].upper() + coverage.text[1:]
        text = (
            f'<p class="coverage partial" id="coverage"><b>{_esc(said)}.</b> Of the '
            f"{len(coverage.loaded):,} loaded dates, {auction_dates:,} auction dates and "
            f"{quiet:,} without an auction; the {missing:,} dates not loaded are unknown, not "
            "closed days: no section below counts them.</p>"
        )
    notes = [
        (coverage.held_back, "Not loaded: a blocking check held back their stored answers"),
        (
            coverage.unbuilt,
            "Not loaded: auction records without market tables (run flower_market_job for them)",
        ),
        (
            coverage.superseded,
            "Loaded, but their newest answers are blocked by a check: the "
            "report shows the answers loaded before",
        ),
    ]
    items = "".join(f"<li>{note}: {runs_text(days)}.</li>" for days, note in notes if days)
    return text + (f'<ul class="coverage">{items}</ul>' if items else "")


def _summary(index: pl.DataFrame, prices: pl.DataFrame, categories: list[str]) -> str:
    rows = []
    for category in categories:
        own = prices.filter(pl.col("flower_gubn") == category)
        idx = index.filter(pl.col("flower_gubn") == category)
        end = idx["value"].to_list()[-1] if idx.height else None
        rows.append(
            [
                _esc(_label(category)),
                _int(own["auction_date"].n_unique()),
                _int(own["quantity"].sum()) + f" {UNITS.get(category, '')}",
                _int(own["total_price"].sum()),
                _dec(end),
                _pct(None if end is None else end - 100),
            ]
        )
    return _table(
        [
            "Category",
            "Auction dates",
            "Traded quantity",
            "Traded value (won)",
            "Index at the end",
            "Change",
        ],
        rows,
        'class="numbers" id="summary"',
    )


def _index_section(
    index: pl.DataFrame, categories: list[str], charts: list[dict], coverage: Coverage
) -> str:
    if index.is_empty():
        return '<p class="note">No index values for this period.</p>'
    first, last = min(index["auction_date"]), max(index["auction_date"])
    holes = coverage.not_loaded_in(first, last)
    gaps = (
        f'<p class="note not-loaded">Not loaded, so without a point: {runs_text(holes)}. '
        "The lines join the loaded dates either side.</p>"
        if holes
        else ""
    )
    labels = sorted({d.isoformat() for d in index["auction_date"].to_list()})
    datasets, rows = [], []
    for category in categories:
        own = index.filter(pl.col("flower_gubn") == category)
        if own.is_empty():
            continue
        datasets.append(
            {
                "label": _label(category),
                "color": COLOURS.get(category, "#495057"),
                "data": [
                    None if v is None else round(v, 2) for v in _aligned(own, labels, "value")
                ],
                "matched": _aligned(own, labels, "matched_pairs"),
                "share": [
                    None if v is None else round(v, 4)
                    for v in _aligned(own, labels, "quantity_share")
                ],
            }
        )
        values = own["value"].to_list()
        dates = own["auction_date"].to_list()
        high, low = values.index(max(values)), values.index(min(values))
        rows.append(
            [
                _esc(_label(category)),
                _int(own.height),
                _dec(values[-1]),
                f"{_dec(values[high])} ({dates[high]:%m-%d})",
                f"{_dec(values[low])} ({dates[low]:%m-%d})",
                _dec(own["matched_pairs"].mean()),
                f"{own['quantity_share'].mean() * 100:.1f}%",
            ]
        )
    charts.append({"id": "chart-index", "kind": "index", "labels": labels, "datasets": datasets})
    return (
        _canvas("chart-index", 380, "Category price indices")
        + gaps
        + _table(
            [
                "Category",
                "Auction dates",
                "Index at the end",
                "Highest (date)",
                "Lowest (date)",
                "Matched pairs per date",
                "Quantity share",
            ],
            rows,
            'class="numbers" id="index-table"',
        )
    )


def _movers_section(
    table: pl.DataFrame, categories: list[str], first: date, last: date, coverage: Coverage
) -> str:
    """`first`..`last`: the loaded dates' span (the whole period when every date is loaded)."""
    windows = mover_windows(first, last)
    if windows is None:
        what = "The period is one day" if coverage.complete else "One date is loaded"
        return f'<p class="note">{what}: there is nothing to compare.</p>'
    (s0, s1), (e0, e1) = windows
    loaded = ""
    if not coverage.complete:
        holes = coverage.not_loaded_in(s0, s1) + coverage.not_loaded_in(e0, e1)
        loaded = (
            f"These are the first and last fortnights of the loaded dates ({first} – {last}), "
            "not of the whole period. "
            + (f"Not loaded in them, and left out: {runs_text(holes)}. " if holes else "")
        )
    parts = [
        f'<p class="rule">Compared: <b>{s0} – {s1}</b> with <b>{e0} – {e1}</b>. {loaded}'
        "Each variety and grade's price in a fortnight is its quantity-weighted average price "
        "(Σ average price × quantity ÷ Σ quantity, whole won). A pair is ranked only if it "
        "traded in both fortnights and, in each, its quantity is at least the median of its "
        f"category's pairs in that fortnight and at least {MIN_QUANTITY} bundles or pots: one "
        f"or two bundles cannot top the list. Top {MOVERS_TOP} by percent change; ties go to the "
        "larger quantity.</p>"
    ]
    headers = [
        "#",
        "Item 품목",
        "Variety 품종",
        "Grade 등급",
        "First fortnight (won)",
        "Last fortnight (won)",
        "Change (won)",
        "Change",
        "Quantity (first / last)",
    ]
    for category in categories:
        parts.append(f"<h3>{_esc(_label(category))}</h3>")
        for direction, title in (("rise", "Top risers"), ("fall", "Top fallers")):
            own = table.filter(
                (pl.col("flower_gubn") == category) & (pl.col("direction") == direction)
            )
            data = f'data-category="{_esc(category)}" data-direction="{direction}"'
            rows = [
                [
                    _int(r["rank"]),
                    _esc(r["item_name"]),
                    _esc(r["variety_name"]),
                    _esc(r["grade"]),
                    _int(r["start_price"]),
                    _int(r["end_price"]),
                    f"{r['change']:+,}",
                    _pct(r["change_pct"]),
                    f"{r['start_quantity']:,} / {r['end_quantity']:,}",
                ]
                for r in own.iter_rows(named=True)
            ]
            verb = "rose" if direction == "rise" else "fell"
            body = (
                _table(headers, rows, f'class="numbers movers" {data}')
                if rows
                else f'<p class="note movers" {data}>No qualifying pair {verb}.</p>'
            )
            parts.append(f"<h4>{title}</h4>{body}")
    return "".join(parts)


def _weekday_section(
    prices: pl.DataFrame, categories: list[str], charts: list[dict], coverage: Coverage
) -> str:
    if prices.is_empty():
        if coverage.complete:
            return '<p class="note">No trades in this period.</p>'
        return (
            f'<p class="note">No trades on the {len(coverage.loaded):,} loaded dates: none had an '
            "auction. The dates not loaded are unknown.</p>"
        )
    by_day = (
        prices.with_columns(pl.col("auction_date").dt.weekday().alias("weekday"))
        .group_by("flower_gubn", "weekday")
        .agg(pl.col("quantity").sum(), pl.col("auction_date").n_unique().alias("dates"))
    )
    shown = [d for d in range(1, 8) if d < 7 or by_day.filter(pl.col("weekday") == 7).height]
    labels = [WEEKDAYS[d - 1] for d in shown]
    grid, rows = [], []
    for number, category in enumerate(categories, 1):
        own = {r["weekday"]: r for r in by_day.filter(pl.col("flower_gubn") == category).to_dicts()}
        if not own:
            continue
        quantity = [own[d]["quantity"] if d in own else 0 for d in shown]
        dates = [own[d]["dates"] if d in own else 0 for d in shown]
        chart_id = f"chart-weekday-{CODES.get(category, f'x{number}')}"
        charts.append(
            {
                "id": chart_id,
                "kind": "weekday",
                "title": f"{_label(category)}: {UNITS.get(category, '')}",
                "labels": labels,
                "datasets": [
                    {
                        "label": _label(category),
                        "color": COLOURS.get(category, "#495057"),
                        "data": [q if n else None for q, n in zip(quantity, dates, strict=True)],
                        "dates": dates,
                    }
                ],
            }
        )
        grid.append(_canvas(chart_id, 230, f"Traded quantity by weekday, {category}"))
        rows.append(
            [_esc(_label(category))]
            + [
                f"{q:,}<small>{round(q / n):,} per date · {n} dates</small>" if n else "–"
                for q, n in zip(quantity, dates, strict=True)
            ]
        )
    if not coverage.complete:
        # Only loaded dates count; say how many of each weekday that is.
        of_period = [sum(d.isoweekday() == w for d in coverage.days) for w in shown]
        loaded = [sum(d.isoweekday() == w for d in coverage.loaded) for w in shown]
        rows.append(
            ["Dates loaded"] + [f"{n:,} of {m:,}" for n, m in zip(loaded, of_period, strict=True)]
        )
    return f'<div class="grid">{"".join(grid)}</div>' + _table(
        ["Category", *labels], rows, 'class="numbers" id="weekday-table"'
    )


def _season_section(
    index: pl.DataFrame,
    prices: pl.DataFrame,
    categories: list[str],
    first: date,
    last: date,
    charts: list[dict],
    coverage: Coverage,
) -> str:
    peaks = seasonal_windows(first, last)
    if not peaks:
        return (
            f'<p class="note" id="no-season">The period {first} – {last} covers neither '
            "Parents' Day (May 8) nor any day of February (the graduation season), so there is "
            "no seasonal view. Choose a period that includes one of them.</p>"
        )
    single_year = first.year == last.year
    # One row per category and auction date (the item rows summed).
    daily = prices.group_by("flower_gubn", "auction_date").agg(pl.col("quantity").sum())
    per_date = daily.group_by("flower_gubn").agg(pl.col("quantity").mean().alias("mean"))
    means = dict(zip(per_date["flower_gubn"], per_date["mean"], strict=True))
    parts = []
    for peak in peaks:
        inside = pl.col("auction_date").is_between(peak.start, peak.end)
        at_peak = pl.col("auction_date").is_between(peak.peak_start, peak.peak_end)
        window_prices, window_index = daily.filter(inside), index.filter(inside)
        days = sorted(set(window_prices["auction_date"]) | set(window_index["auction_date"]))
        labels = [d.isoformat() for d in days]
        shown = [
            f"{label} (어버이날)" if peak.focus and label == peak.focus.isoformat() else label
            for label in labels
        ]
        peak_days = [i for i, d in enumerate(days) if peak.peak_start <= d <= peak.peak_end]
        clipped = (
            f" The period covers only {peak.start} – {peak.end} of the window "
            f"{peak.full_start} – {peak.full_end}."
            if peak.partial
            else ""
        )
        missing = coverage.not_loaded_in(peak.start, peak.end)
        unknown = (
            f' <span class="not-loaded">Not loaded in this window, and left out (unknown, not '
            f"closed): {runs_text(missing)}.</span>"
            if missing
            else ""
        )
        parts.append(
            f'<section class="peak" id="{peak.key}"><h3>{_esc(peak.title)}</h3>'
            f'<p class="note">Shown: {peak.start} – {peak.end}, the peak '
            f"<b>{peak.peak_start} – {peak.peak_end}</b> shaded and two weeks either side."
            f"{clipped}{unknown}</p>"
        )
        if not coverage.loaded_in(peak.start, peak.end):
            parts.append(
                '<p class="note not-loaded">No date of this window is loaded: whether the '
                "market traded is unknown.</p></section>"
            )
            continue
        if not days:
            where = "on the loaded dates of this window" if missing else "in this window"
            parts.append(f'<p class="note">No auction {where}.</p></section>')
            continue
        volume, lines, rows = [], [], []
        for category in categories:
            own_prices = window_prices.filter(pl.col("flower_gubn") == category)
            own_index = window_index.filter(pl.col("flower_gubn") == category)
            colour = COLOURS.get(category, "#495057")
            if own_prices.height:
                relative = own_prices.with_columns(
                    (pl.col("quantity") / means[category] * 100).round(1).alias("relative")
                )
                volume.append(
                    {
                        "label": _label(category),
                        "color": colour,
                        "data": _aligned(relative, labels, "relative"),
                        "quantity": _aligned(own_prices, labels, "quantity"),
                        "unit": UNITS.get(category, ""),
                    }
                )
            if own_index.height:
                lines.append(
                    {
                        "label": _label(category),
                        "color": colour,
                        "data": [
                            None if v is None else round(v, 2)
                            for v in _aligned(own_index, labels, "value")
                        ],
                    }
                )
            if own_prices.height or own_index.height:
                rows.append(_peak_row(category, peak, daily, own_index, at_peak, coverage))
        volume_id, index_id = f"chart-{peak.key}-volume", f"chart-{peak.key}-index"
        common = {"labels": shown, "singleYear": single_year, "shade": peak_days}
        charts.append({"id": volume_id, "kind": "season-volume", "datasets": volume, **common})
        charts.append({"id": index_id, "kind": "season-index", "datasets": lines, **common})
        parts.append(
            '<div class="pair">'
            + _canvas(volume_id, 280, f"Daily quantity, {peak.title}")
            + _canvas(index_id, 280, f"Price index, {peak.title}")
            + "</div>"
            + _table(
                [
                    "Category",
                    "Auction dates at the peak",
                    "Quantity per auction date: peak",
                    "… rest of the period",
                    "Peak vs rest",
                    "Index before the peak",
                    "Highest at the peak",
                    "Index after the peak",
                ],
                rows,
                f'class="numbers season" data-peak="{peak.key}"',
            )
            + "</section>"
        )
    return "".join(parts)


def _peak_row(
    category: str,
    peak: Peak,
    daily: pl.DataFrame,
    window_index: pl.DataFrame,
    at_peak: pl.Expr,
    coverage: Coverage,
) -> list[str]:
    """Volume at the peak against the rest of the period; the index just before, at, after.

    Only loaded dates count: a peak none of whose dates is loaded is "not loaded", never 0.
    """
    own = daily.filter(pl.col("flower_gubn") == category)
    peak_quantity, rest_quantity = own.filter(at_peak)["quantity"], own.filter(~at_peak)["quantity"]
    peak_mean = peak_quantity.mean() if peak_quantity.len() else None
    rest_mean = rest_quantity.mean() if rest_quantity.len() else None
    day = pl.col("auction_date")
    before = window_index.filter(day < peak.peak_start).tail(1)
    during = window_index.filter(at_peak).sort("value", descending=True).head(1)
    after = window_index.filter(day > peak.peak_end).head(1)

    def value(frame: pl.DataFrame) -> str:
        if frame.is_empty():
            return "–"
        (row,) = frame.iter_rows(named=True)
        return f"{_dec(row['value'])} ({row['auction_date']:%m-%d})"

    peak_days = (peak.peak_end - peak.peak_start).days + 1
    loaded = len(coverage.loaded_in(peak.peak_start, peak.peak_end))
    if not loaded:
        unknown = '<span class="not-loaded">not loaded</span>'
        return [
            _esc(_label(category)),
            unknown,
            unknown,
            _int(rest_mean),
            "–",
            value(before),
            unknown,
            value(after),
        ]
    partly = f"<small>{loaded} of {peak_days} dates loaded</small>" if loaded < peak_days else ""
    return [
        _esc(_label(category)),
        _int(peak_quantity.len()) + partly,
        _int(peak_mean),
        _int(rest_mean),
        _pct(peak_mean / rest_mean * 100 - 100) if peak_mean and rest_mean else "–",
        value(before),
        value(during),
        value(after),
    ]


def _how_to_read(first: date, last: date, coverage: Coverage) -> str:
    base = "first auction date" if coverage.complete else "first loaded auction date"
    return f"""
<ul>
<li><b>Category price index</b>: a chained Törnqvist index per category. On each auction date
it compares the <i>matched pairs</i> (varieties and grades that traded on both that date and
the category's previous auction date, with a positive price): the chain link is
Σ ½(w<sub>before</sub> + w<sub>today</sub>) · ln(p<sub>today</sub> / p<sub>before</sub>), w being a
pair's share of the matched pairs' traded value on each date. The links are chained; here the
chain is rebased to <b>100 on each category's {base} in {first} – {last}</b>, so
120 means prices 20% above that day for like-for-like varieties and grades. The <i>quantity
share</i> is the matched pairs' quantity over the category's whole quantity that date: a low
share means the link rests on few of the day's trades. Both show in the chart's tooltips.</li>
<li><b>Average price</b> is quantity-weighted: traded value ÷ traded quantity, in whole won.
Quantities are bundles (속) for cut flowers (절화) and pots (분) for foliage (관엽), orchids
(난) and Korean spring orchids (춘란); the units differ, so quantities are never added across
categories.</li>
<li><b>Loaded, not loaded</b>: a date is loaded when the warehouse holds its auction answer in
its auction records and market tables; a loaded date without trades had no auction. A date not
loaded (never fetched, held back by a blocking check, or not yet built into the market tables)
is unknown, not a closed day: the header names such dates, and no section counts them.</li>
<li><b>Risers and fallers</b>: the rule stands above the tables.</li>
<li><b>Volume by weekday</b>: each category's traded quantity over the period, summed by
weekday; the table adds the mean per auction date. The market auctions each category on its
own weekdays, and not on Sundays or public holidays.</li>
<li><b>Seasonal view</b>: the peaks the period covers: the graduation season (all of
February) and Parents' Day (the run-up week, May 1 – May 8), each shaded with two weeks either
side. It is shown for February when the period holds any day of it, and for Parents' Day when
it holds May 8. Volume is each date's quantity relative to the category's mean auction date
over the whole period (100 = an average day); the index is the one above. "Peak vs rest"
compares the mean quantity per auction date at the peak with the rest of the period; the index
columns give the last value before the peak, the highest during it and the first after it.</li>
</ul>"""


_STYLE = """
:root { color-scheme: light; }
body { font-family: FONTS; margin: 0 auto; max-width: 1180px; padding: 24px 28px 48px;
  color: #212529; background: #fff; line-height: 1.5; font-size: 15px; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 20px; margin: 36px 0 8px; padding-bottom: 4px; border-bottom: 2px solid #dee2e6; }
h3 { font-size: 17px; margin: 22px 0 6px; }
h4 { font-size: 14px; margin: 8px 0 4px; color: #495057; }
p.lead, p.note, p.rule { color: #495057; margin: 4px 0 10px; }
.chart { position: relative; width: 100%; margin: 8px 0 12px; }
.grid { display: grid; grid-template-columns: repeat(2, minmax(0, 1fr)); gap: 8px 24px; }
.pair { display: grid; grid-template-columns: repeat(2, minmax(0, 1fr)); gap: 8px 24px; }
.pair > div { min-width: 0; }
table { border-collapse: collapse; margin: 6px 0 14px; font-size: 13px; width: 100%; }
th, td { padding: 4px 8px; border-bottom: 1px solid #e9ecef; vertical-align: top; }
th { text-align: left; background: #f8f9fa; font-weight: 600; }
table.numbers td { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
table.numbers td:first-child { text-align: left; }
table.movers td:nth-child(-n+4) { text-align: left; }
table.movers td:first-child { text-align: right; width: 1.5em; }
td small { display: block; color: #868e96; font-size: 11px; }
section.peak { margin-top: 10px; }
p.coverage { margin: 6px 0 10px; }
p.coverage.partial, ul.coverage { background: #fff4e6; border-left: 4px solid #f08c00;
  padding: 6px 10px; }
ul.coverage { margin: -10px 0 10px; padding-left: 28px; color: #495057; }
.not-loaded { color: #d9480f; }
footer { margin-top: 40px; color: #868e96; font-size: 12px; }
@media (max-width: 900px) { .grid, .pair { grid-template-columns: minmax(0, 1fr); } }
@media print { .chart { break-inside: avoid; } body { max-width: none; } }
"""

_SCRIPT = """
(function () {
  const DATA = JSON.parse(document.getElementById('report-data').textContent);
  const fmt = new Intl.NumberFormat('en-US');
  const dec = new Intl.NumberFormat('en-US', {minimumFractionDigits: 1, maximumFractionDigits: 1});
  Chart.defaults.font.family = DATA.fonts;
  Chart.defaults.font.size = 12;
  Chart.defaults.color = '#343a40';
  Chart.defaults.animation = false;
  Chart.defaults.maintainAspectRatio = false;
  Chart.defaults.responsive = true;
  const dateTicks = {
    autoSkip: true, autoSkipPadding: 14, maxRotation: 0,
    callback: function (value) {
      const label = this.getLabelForValue(value);
      return DATA.singleYear ? label.slice(5) : label;
    },
  };
  const numberTicks = {callback: (value) => fmt.format(value)};
  function line(ds) {
    return {label: ds.label, data: ds.data, borderColor: ds.color, backgroundColor: ds.color,
      spanGaps: true, pointRadius: 2.5, pointHoverRadius: 5, borderWidth: 2, tension: 0,
      matched: ds.matched, share: ds.share};
  }
  function bar(ds) {
    return {label: ds.label, data: ds.data, backgroundColor: ds.color + 'cc',
      borderColor: ds.color, borderWidth: 1, skipNull: true, dates: ds.dates,
      quantity: ds.quantity, unit: ds.unit};
  }
  const kinds = {
    index: (spec) => ({
      type: 'line',
      data: {labels: spec.labels, datasets: spec.datasets.map(line)},
      options: {
        interaction: {mode: 'nearest', axis: 'x', intersect: false},
        scales: {x: {ticks: dateTicks}, y: {title: {display: true, text: 'Index (100 = first date)'},
          ticks: numberTicks}},
        plugins: {tooltip: {callbacks: {
          label: (c) => c.dataset.label + ': ' + dec.format(c.parsed.y),
          afterLabel: (c) => 'matched pairs ' + fmt.format(c.dataset.matched[c.dataIndex]) +
            ', quantity share ' + dec.format(100 * c.dataset.share[c.dataIndex]) + '%',
        }}},
      },
    }),
    weekday: (spec) => ({
      type: 'bar',
      data: {labels: spec.labels, datasets: spec.datasets.map(bar)},
      options: {
        scales: {y: {beginAtZero: true, ticks: numberTicks}},
        plugins: {
          legend: {display: false},
          title: {display: true, text: spec.title},
          tooltip: {callbacks: {
            label: (c) => fmt.format(c.parsed.y) + ' over ' + c.dataset.dates[c.dataIndex] +
              ' auction dates',
            afterLabel: (c) => {
              const n = c.dataset.dates[c.dataIndex];
              return n ? fmt.format(Math.round(c.parsed.y / n)) + ' per auction date' : '';
            },
          }},
        },
      },
    }),
    'season-volume': (spec) => ({
      type: 'bar',
      data: {labels: spec.labels, datasets: spec.datasets.map(bar)},
      options: {
        scales: {x: {ticks: dateTicks}, y: {beginAtZero: true,
          title: {display: true, text: '100 = average day'},
          ticks: numberTicks}},
        plugins: {
          title: {display: true, text: 'Daily quantity'},
          tooltip: {callbacks: {
            label: (c) => c.dataset.label + ': ' + fmt.format(c.dataset.quantity[c.dataIndex]) +
              ' ' + c.dataset.unit + ' (' + dec.format(c.parsed.y) + ')',
          }},
        },
      },
    }),
    'season-index': (spec) => ({
      type: 'line',
      data: {labels: spec.labels, datasets: spec.datasets.map(line)},
      options: {
        interaction: {mode: 'nearest', axis: 'x', intersect: false},
        scales: {x: {ticks: dateTicks}, y: {title: {display: true, text: 'Price index'},
          ticks: numberTicks}},
        plugins: {
          title: {display: true, text: 'Price index'},
          tooltip: {callbacks: {label: (c) => c.dataset.label + ': ' + dec.format(c.parsed.y)}},
        },
      },
    }),
  };
  // Shades the peak's dates (spec.shade: their indices on the category axis) behind the data.
  function shading(spec) {
    return {
      id: 'peakShade',
      beforeDatasetsDraw(chart) {
        const days = spec.shade || [];
        if (!days.length) return;
        const x = chart.scales.x, area = chart.chartArea;
        const step = spec.labels.length > 1 ? x.getPixelForValue(1) - x.getPixelForValue(0) : area.width;
        const left = Math.max(area.left, x.getPixelForValue(days[0]) - step / 2);
        const right = Math.min(area.right, x.getPixelForValue(days[days.length - 1]) + step / 2);
        const ctx = chart.ctx;
        ctx.save();
        ctx.fillStyle = 'rgba(250, 176, 5, 0.16)';
        ctx.fillRect(left, area.top, right - left, area.bottom - area.top);
        ctx.restore();
      },
    };
  }
  for (const spec of DATA.charts) {
    const config = kinds[spec.kind](spec);
    config.plugins = [shading(spec)];
    new Chart(document.getElementById(spec.id), config);
  }
})();
"""


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
    if coverage.span is None:
        raise NothingLoaded(
            f"{first} … {last} is not loaded: no date of it is in the warehouse's auction "
            "records and market tables (never fetched, or held back by a blocking check), so "
            "the report could only say what it does not know; load some of them first "
            "(flower-assets materialize)"
        )
    span_first, span_last = coverage.span
    period = pl.col("auction_date").is_between(first, last)
    index = rebased_index(index, first, last)
    item_prices = item_prices.filter(period)
    variety_changes = variety_changes.filter(period)
    categories = _categories(index, item_prices, variety_changes)
    charts: list[dict] = []
    sections = [
        ("index", "Category price indices", _index_section(index, categories, charts, coverage)),
        (
            "movers",
            "Top risers and fallers",
            _movers_section(
                movers(variety_changes, span_first, span_last),
                categories,
                span_first,
                span_last,
                coverage,
            ),
        ),
        (
            "weekday",
            "Traded quantity by weekday",
            _weekday_section(item_prices, categories, charts, coverage),
        ),
        (
            "season",
            "Seasonal view: Parents' Day and graduation",
            _season_section(index, item_prices, categories, first, last, charts, coverage),
        ),
        ("how-to-read", "How to read this", _how_to_read(first, last, coverage)),
    ]
    data = {
        "charts": charts,
        "fonts": FONTS,
        "singleYear": first.year == last.year,
    }
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":")).replace("<", "\\u003c")
    title = f"Flower auction market report, {first} – {last}"
    body = "".join(
        f'<section id="{key}"><h2>{heading}</h2>{content}</section>'
        for key, heading, content in sections
    )
    dates = item_prices["auction_date"].n_unique() if item_prices.height else 0
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:">
<title>{_esc(title)}</title>
<style>{_STYLE.replace("FONTS", FONTS)}</style>
</head>
<body>
<header>
<h1>{_esc(title)}</h1>
<p class="lead">aT Yangjae flower market (양재 화훼공판장): {dates:,} auction dates
{"from" if coverage.complete else "in the loaded part of"} {first} to {last}, all four
categories: 절화 cut flowers, 관엽 foliage, 난 orchids, 춘란 Korean spring orchids.</p>
{_coverage(coverage, dates)}
{_summary(index, item_prices, categories)}
</header>
{body}
<footer>Self-contained: opens without a network. Charts drawn with Chart.js {CHART_JS_VERSION}
(MIT licence, © Chart.js Contributors), inlined.</footer>
<script type="application/json" id="report-data">{payload}</script>
<script>{chart_js()}</script>
<script>{_SCRIPT}</script>
</body>
</html>
"""
