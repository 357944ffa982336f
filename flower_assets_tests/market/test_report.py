"""The market report's page: what it says, how it is built, and the page in headless Chromium.

The numbers of each section (the risers-and-fallers rule, the seasonal windows, …) are tested on
their own in test_report_data.py.

The browser test renders the report of a crafted market (2024-02-01 … 2024-05-31, so both
seasonal peaks are in it), opens the file with every network request refused, and checks that
each chart was drawn with the expected datasets and points, that the tooltips work, that the
tables hold the expected rows and that the Korean names are on the page. Chromium is Debian's
(`/usr/bin/chromium`, installed by `.ci/run`); it is required, never skipped.
"""

from __future__ import annotations

import ast
import os
import re
from datetime import date, timedelta
from importlib import resources
from pathlib import Path

import polars as pl
import pytest

from flower_assets.market.coverage import Coverage, NothingLoaded
from flower_assets.market.price_index import chain_links, index_values
from flower_assets.market.prices import RECORD_COLUMNS, daily_item_prices, variety_price_changes
from flower_assets.market.report import CHART_JS_VERSION, render_report, static_file

CHROMIUM = "/usr/bin/chromium"
FIRST, LAST = date(2024, 2, 1), date(2024, 5, 31)
PARENTS_DAY = (date(2024, 5, 1), date(2024, 5, 8))  # the peak: the run-up week

# (category, item id, item, variety id, variety, grade, price in won on FIRST, bundles or pots
#  per auction date, price on LAST / price on FIRST)
PAIRS = [
    ("절화", 1, "장미", 11, "레드", "특1", 10_000, 40, 1.50),  # riser 1
    ("절화", 1, "장미", 11, "레드", "상1", 7_000, 30, 1.20),  # riser 3
    ("절화", 1, "장미", 12, "화이트", "특1", 9_000, 50, 0.70),  # faller 1
    ("절화", 1, "장미", 12, "화이트", "상1", 6_000, 8, 1.40),  # below the median: not ranked
    ("절화", 2, "카네이션", 21, "레드", "특1", 5_000, 60, 1.30),  # riser 2
    ("절화", 2, "카네이션", 21, "레드", "상1", 4_000, 20, 0.90),  # below the median
    ("절화", 2, "카네이션", 22, "핑크", "특1", 5_000, 1, 4.00),  # one bundle: noise
    ("절화", 2, "카네이션", 22, "핑크", "상1", 4_000, 25, 1.05),  # below the median
    ("절화", 3, "국화", 31, "백마", "특", 3_000, 35, 0.80),  # faller 2
    ("절화", 3, "국화", 31, "백마", "상", 2_000, 5, 0.50),  # below the median
    ("관엽", 4, "몬스테라", 41, "대", "특", 20_000, 10, 1.10),  # riser
    ("관엽", 4, "몬스테라", 42, "중", "특", 12_000, 12, 0.95),  # faller
    ("관엽", 5, "산세베리아", 51, "스투키", "상", 9_000, 9, 1.25),  # below the median
    ("난", 6, "호접란", 61, "화이트", "특", 30_000, 6, 1.15),  # riser
    ("난", 6, "호접란", 62, "핑크", "특", 28_000, 6, 0.85),  # faller
    ("춘란", 7, "춘란", 71, "소심", "특", 90_000, 3, 1.10),  # no trade in the last fortnight
    ("춘란", 7, "춘란", 72, "중투", "특", 70_000, 2, 1.00),
]
EXPECTED_MOVERS = {
    ("절화", "rise"): [
        ("장미", "레드", "특1"),
        ("카네이션", "레드", "특1"),
        ("장미", "레드", "상1"),
    ],
    ("절화", "fall"): [("장미", "화이트", "특1"), ("국화", "백마", "특")],
    ("관엽", "rise"): [("몬스테라", "대", "특")],
    ("관엽", "fall"): [("몬스테라", "중", "특")],
    ("난", "rise"): [("호접란", "화이트", "특")],
    ("난", "fall"): [("호접란", "핑크", "특")],
    ("춘란", "rise"): [],
    ("춘란", "fall"): [],
}


def trades(day: date, category: str) -> bool:
    """The market's calendar: cut flowers Mon/Wed/Fri, foliage Tue/Thu, orchids Tue/Fri,
    spring orchids on the second Friday of a month."""
    if category == "춘란":
        return day.weekday() == 4 and 8 <= day.day <= 14
    return day.weekday() in {"절화": {0, 2, 4}, "관엽": {1, 3}, "난": {1, 4}}[category]


def crafted_records() -> pl.DataFrame:
    """Every pair on every auction date of its category; within a category all pairs share
    the day's volume factor (busier in February and before Parents' Day)."""
    rows = []
    span = (LAST - FIRST).days
    for offset in range(span + 1):
        day = FIRST + timedelta(days=offset)
        season = 1.5 if day.month == 2 else 2.0 if day.month == 5 and day.day <= 8 else 1.0
        for gubn, item_id, item, flower_id, variety, grade, price, quantity, trend in PAIRS:
            if not trades(day, gubn):
                continue
            bundles = max(1, round(quantity * season)) if quantity > 1 else 1
            unit = round(price * (1 + (trend - 1) * offset / span))
            if gubn == "절화" and day.month == 5 and day.day <= 8:
                unit = round(unit * 1.4)  # the Parents' Day price peak
            rows.append(
                {
                    "auction_date": day,
                    "flower_gubn": gubn,
                    "flower_type_id": item_id,
                    "item_name": item,
                    "flower_id": flower_id,
                    "variety_name": variety,
                    "grade": grade,
                    "quantity": bundles,
                    "avg_price": unit,
                    "total_price": unit * bundles,
                }
            )
    return pl.DataFrame(rows, schema=RECORD_COLUMNS)


def report_frames(records: pl.DataFrame, first: date, last: date):
    days = sorted(set(records["auction_date"].to_list()))
    days = [d for d in days if first <= d <= last]
    index = index_values(chain_links(records, days))
    return index, daily_item_prices(records, days), variety_price_changes(records, days)


def test_a_period_without_peaks_says_so():
    records = crafted_records()
    first, last = date(2024, 3, 4), date(2024, 3, 29)
    page = render_report(*report_frames(records, first, last), first, last)
    assert 'id="no-season"' in page and "covers neither" in page
    assert "https://" not in page.split("<script>", 1)[0]  # no link before the library
    assert f"Chart.js v{CHART_JS_VERSION}" in page and "sourceMappingURL" not in page


def test_names_from_the_api_are_escaped_and_cannot_end_the_data_block():
    hostile = '<b>장미</b> & "co" </script>'
    records = crafted_records().with_columns(
        pl.when(pl.col("variety_name") == "레드")
        .then(pl.lit(hostile))
        .otherwise(pl.col("variety_name"))
        .alias("variety_name")
    )
    page = render_report(*report_frames(records, FIRST, LAST), FIRST, LAST)
    assert "&lt;b&gt;장미&lt;/b&gt; &amp; &#34;co&#34; &lt;/script&gt;" in page  # a riser
    assert "<b>장미</b>" not in page
    # The page has its three scripts (data, Chart.js, report.js) and no other end of one.
    assert page.count("</script>") == 3


def test_the_page_inlines_its_css_and_javascript_package_files_as_they_are():
    records = crafted_records()
    page = render_report(*report_frames(records, FIRST, LAST), FIRST, LAST)
    css, script = static_file("report.css"), static_file("report.js")
    assert f"<style>{css}</style>" in page and f"<script>{script}</script>" in page
    # Standalone files: no template or Python placeholders in them (the data comes as JSON).
    for text in (css, script):
        assert not re.search(r"\{\{|\{%|\{#|%\(|FONTS", text)
    assert '<script type="application/json" id="report-data">{"charts":' in page


HTML_TAG = re.compile(
    r"</?(html|head|body|header|footer|section|div|span|p|b|i|small|code|h[1-6]|ul|ol|li|"
    r"table|thead|tbody|tr|th|td|canvas|script|style|meta|title|br|a)\b[^<>]*>",
    re.IGNORECASE,
)
CSS_RULE = re.compile(r"[\w.#:-]+\s*\{[^{}]*\b[a-z-]+\s*:[^{};]+;[^{}]*\}")
JAVASCRIPT = re.compile(r"\bfunction\s*\(|=>\s*[{(]|\bdocument\.|\bconst\s+\w+\s*=|\bnew Chart\(")


def test_no_python_module_holds_html_css_or_javascript():
    """The page is in report_templates/ (templates, report.css, report.js); Python holds none of
    it, not even an attribute. Docstrings may name elements (`<script>`); strings may not."""
    package = Path(str(resources.files("flower_assets")))
    found = []
    for path in sorted(package.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
            and node.body
            and isinstance(node.body[0], ast.Expr)
            and isinstance(node.body[0].value, ast.Constant)
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                if id(node) in docstrings:
                    continue
                for kind, pattern in (("HTML", HTML_TAG), ("CSS", CSS_RULE), ("JS", JAVASCRIPT)):
                    if pattern.search(node.value):
                        found.append(f"{path.relative_to(package)}:{node.lineno}: {kind}")
            if isinstance(node, ast.JoinedStr):  # f-strings: their literal parts
                text = "".join(v.value for v in node.values if isinstance(v, ast.Constant))
                if HTML_TAG.search(text):
                    found.append(f"{path.relative_to(package)}:{node.lineno}: HTML")
    assert found == []


def test_a_period_without_trades_renders_notes_instead_of_charts():
    first, last = date(2024, 5, 1), date(2024, 5, 31)
    empty = report_frames(pl.DataFrame(schema=RECORD_COLUMNS), first, last)
    page = render_report(*empty, first, last)
    assert "<canvas" not in page
    assert "No index values for this period." in page and "No trades in this period." in page
    assert "No auction in this window." in page  # May 8 is in the period, no trade is


# ---------------------------------------------------------------------------------------------
# Dates not loaded: named, never taken for days without an auction

LOADED = (date(2024, 3, 1), date(2024, 4, 30))  # of FIRST … LAST; February and May not loaded


def partly_loaded() -> tuple[str, Coverage]:
    """The report of FIRST … LAST when the warehouse holds only March and April."""
    records = crafted_records().filter(pl.col("auction_date").is_between(*LOADED))
    days = [LOADED[0] + timedelta(days=n) for n in range((LOADED[1] - LOADED[0]).days + 1)]
    coverage = Coverage(FIRST, LAST, frozenset(days))
    return render_report(*report_frames(records, *LOADED), FIRST, LAST, coverage), coverage


def test_a_partly_loaded_report_names_the_dates_it_does_not_know():
    page, coverage = partly_loaded()
    header = page[page.index("<header>") : page.index("</header>")]
    assert (
        "Loaded: 2024-03-01 … 2024-04-30; not loaded: 2024-02-01 … 2024-02-29, "
        "2024-05-01 … 2024-05-31" in header
    )
    auction_dates = crafted_records().filter(pl.col("auction_date").is_between(*LOADED))
    n = auction_dates["auction_date"].n_unique()
    assert f"Of the 61 loaded dates, {n} auction dates and {61 - n} without an auction" in header
    assert "the 60 dates not loaded are unknown, not closed days" in header
    # Risers and fallers compare the loaded dates' fortnights, not two months of nothing.
    assert "Compared: <b>2024-03-01 – 2024-03-14</b> with <b>2024-04-17 – 2024-04-30</b>" in page
    assert "first and last fortnights of the loaded dates (2024-03-01 – 2024-04-30)" in page
    # Each seasonal window names its dates not loaded; none is called closed.
    assert "left out (unknown, not closed): 2024-02-01 … 2024-02-29." in page
    assert "left out (unknown, not closed): 2024-05-01 … 2024-05-22." in page
    assert "No auction in this window." not in page
    # The weekday table says how many of each weekday are loaded (Mondays: 9 of 17).
    mondays = sum(d.weekday() == 0 for d in coverage.loaded)
    assert (mondays, sum(d.weekday() == 0 for d in coverage.days)) == (9, 17)
    assert "<td>Dates loaded</td><td>9 of 17</td>" in page
    # Neither peak is loaded: its cells say so, never "0 auction dates at the peak".
    peaks = page[page.index('id="season"') :]
    # Three cells a row: 4 categories at graduation, 3 at Parents' Day (춘란 trades on 04-12).
    assert peaks.count('<td><span class="not-loaded">not loaded</span></td>') == 3 * (4 + 3)
    assert "<td>0</td>" not in peaks


def test_a_window_without_a_loaded_date_is_unknown_and_nothing_loaded_is_refused():
    first, last = date(2024, 4, 1), date(2024, 5, 31)
    loaded = (date(2024, 4, 1), date(2024, 4, 10))
    records = crafted_records().filter(pl.col("auction_date").is_between(*loaded))
    days = [loaded[0] + timedelta(days=n) for n in range(10)]
    page = render_report(
        *report_frames(records, *loaded), first, last, Coverage(first, last, frozenset(days))
    )
    assert "No date of this window is loaded: whether the market traded is unknown." in page
    nothing = Coverage(first, last, frozenset())
    with pytest.raises(NothingLoaded, match="2024-04-01 … 2024-05-31 is not loaded"):
        render_report(*report_frames(records, *loaded), first, last, nothing)
    # Loaded dates without a trade are days without an auction, and said to be.
    quiet = Coverage(first, last, frozenset([date(2024, 4, 7)]))  # a Sunday
    empty = report_frames(pl.DataFrame(schema=RECORD_COLUMNS), first, last)
    page = render_report(*empty, first, last, quiet)
    assert "No trades on the 1 loaded dates: none had an auction." in page
    assert "Of the 1 loaded dates, 0 auction dates and 1 without an auction" in page


# ---------------------------------------------------------------------------------------------
# The page in Chromium

CHARTS_JS = """() => Array.from(document.querySelectorAll('canvas')).map((canvas) => {
  const chart = Chart.getChart(canvas);
  if (!chart) return {id: canvas.id, chart: false};
  const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  let painted = 0;
  for (let i = 3; i < pixels.length; i += 4) if (pixels[i] > 0) painted++;
  const datasets = chart.data.datasets.map((ds, i) => {
    const meta = chart.getDatasetMeta(i);
    const drawn = meta.data.filter((e, k) => ds.data[k] !== null && !e.skip
      && Number.isFinite(e.x) && Number.isFinite(e.y)).length;
    return {label: ds.label, points: ds.data.filter((v) => v !== null).length, drawn,
            elements: meta.data.length};
  });
  // Show the tooltip of the first point of the first dataset: runs the tooltip callbacks.
  const k = chart.data.datasets[0].data.findIndex((v) => v !== null);
  const element = chart.getDatasetMeta(0).data[k];
  chart.tooltip.setActiveElements([{datasetIndex: 0, index: k}], {x: element.x, y: element.y});
  chart.update();
  const tooltip = chart.tooltip.body.map((b) => [...b.before, ...b.lines, ...b.after].join(' '));
  return {id: canvas.id, chart: true, type: chart.config.type, labels: chart.data.labels.length,
          labelList: chart.data.labels,
          width: chart.chartArea.width, height: chart.chartArea.height, painted, datasets,
          tooltip: tooltip.join(' | ')};
})"""


def table_rows(page, selector: str) -> list[list[str]]:
    return page.eval_on_selector(
        selector,
        "(t) => t.tagName !== 'TABLE' ? [] : Array.from(t.tBodies[0].rows).map("
        "(r) => Array.from(r.cells).map((c) => c.innerText.trim()))",
    )


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> Path:
    records = crafted_records()
    page = render_report(*report_frames(records, FIRST, LAST), FIRST, LAST)
    path = tmp_path_factory.mktemp("report") / "report.html"
    path.write_text(page, encoding="utf-8")
    return path


def test_the_report_renders_every_chart_offline_in_chromium(rendered: Path):
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: .ci/run installs Debian's chromium"
    url = rendered.as_uri()
    records = crafted_records()
    dates = {
        gubn: records.filter(flower_gubn=gubn)["auction_date"].n_unique()
        for gubn in ("절화", "관엽", "난", "춘란")
    }
    weekdays = {
        gubn: records.filter(flower_gubn=gubn)["auction_date"].dt.weekday().n_unique()
        for gubn in dates
    }
    all_dates = records["auction_date"].n_unique()
    errors, requests, refused = [], [], []

    def route(r):
        if r.request.url == url:
            r.continue_()
        else:
            refused.append(r.request.url)
            r.abort()

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.route("**/*", route)
            page.on("request", lambda r: requests.append(r.url))
            page.on("console", lambda m: m.type == "error" and errors.append(m.text))
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(url, wait_until="load")
            charts = {c["id"]: c for c in page.evaluate(CHARTS_JS)}
            body = page.inner_text("body")
            movers_tables = {
                (cat, direction): table_rows(
                    page, f'.movers[data-category="{cat}"][data-direction="{direction}"]'
                )
                for cat, direction in EXPECTED_MOVERS
            }
            season_rows = table_rows(page, 'table.season[data-peak="parents-day-2024"]')
        finally:
            browser.close()

    assert errors == []
    assert requests == [url] and refused == []  # nothing but the file itself
    expected = {
        "chart-index": ("line", all_dates, list(dates.values())),
        **{f"chart-weekday-{n}": ("bar", 6, [weekdays[g]]) for n, g in enumerate(dates, 1)},
    }
    for key in ("graduation-2024", "parents-day-2024"):
        expected[f"chart-{key}-volume"] = ("bar", None, None)
        expected[f"chart-{key}-index"] = ("line", None, None)
    assert sorted(charts) == sorted(expected)
    for chart_id, (kind, labels, points) in expected.items():
        chart = charts[chart_id]
        assert chart["chart"] and chart["type"] == kind, chart_id
        assert chart["width"] > 100 and chart["height"] > 100 and chart["painted"] > 1000, chart
        assert all(d["drawn"] == d["points"] > 0 for d in chart["datasets"]), chart
        assert chart["tooltip"], chart_id
        if labels is not None:
            assert chart["labels"] == labels, chart_id
            assert [d["points"] for d in chart["datasets"]] == points, chart_id
        else:
            assert len(chart["datasets"]) == 4, chart_id  # all four categories trade there
    assert [d["label"] for d in charts["chart-index"]["datasets"]] == [
        "절화 (cut flowers)",
        "관엽 (foliage plants)",
        "난 (orchids)",
        "춘란 (Korean spring orchids)",
    ]
    assert re.search(r"matched pairs \d+, quantity share [\d.]+%", charts["chart-index"]["tooltip"])
    assert "2024-05-08 (어버이날)" in charts["chart-parents-day-2024-volume"]["labelList"]

    for key, rows in movers_tables.items():
        assert [tuple(row[1:4]) for row in rows] == EXPECTED_MOVERS[key], key
        for row in rows:
            assert re.fullmatch(r"\d{1,3}(,\d{3})*", row[4]) and re.fullmatch(
                r"[+-]\d{1,3}(,\d{3})*", row[6]
            ), row
    top = movers_tables[("절화", "rise")][0]
    # 장미 레드 특1 costs 10,000 × (1 + 0.5 × days since 02-01 / 120), the same bundles each
    # date: 02-02 … 02-14 (days 1, 4, 6, 8, 11, 13) → 61,792 / 6 = 10,299 won, and 05-20 …
    # 05-31 (days 109 … 120) → 88,625 / 6 = 14,771 won: +4,472 won, +43.4%.
    assert top[4:8] == ["10,299", "14,771", "+4,472", "+43.4%"]
    assert [row[0] for row in season_rows] == [
        "절화 (cut flowers)",
        "관엽 (foliage plants)",
        "난 (orchids)",
        "춘란 (Korean spring orchids)",
    ]
    # Cut flowers trade 2x the bundles at 1.4x the price on May 1 … 8 (4 auction dates).
    per_date = (
        records.filter(flower_gubn="절화").group_by("auction_date").agg(pl.col("quantity").sum())
    )
    peak = per_date.filter(pl.col("auction_date").is_between(*PARENTS_DAY))["quantity"]
    rest = per_date.filter(~pl.col("auction_date").is_between(*PARENTS_DAY))["quantity"]
    assert (peak.len(), peak.mean()) == (4, 547)
    lift = f"{(547 / rest.mean() - 1) * 100:+.1f}%"
    assert season_rows[0][1:5] == ["4", "547", f"{round(rest.mean()):,}", lift]
    assert season_rows[0][6].endswith("(05-08)") and season_rows[0][5].endswith("(04-29)")
    for word in (
        "절화",
        "관엽",
        "춘란",
        "장미",
        "카네이션",
        "어버이날",
        "졸업 시즌",
        "How to read this",
    ):
        assert word in body, word


def test_a_partly_loaded_report_in_chromium_shows_what_it_does_not_know(tmp_path):
    from playwright.sync_api import sync_playwright

    page_html, _ = partly_loaded()
    path = tmp_path / "partly_loaded.html"
    path.write_text(page_html, encoding="utf-8")
    errors = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda m: m.type == "error" and errors.append(m.text))
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(path.as_uri(), wait_until="load")
            charts = {c["id"]: c for c in page.evaluate(CHARTS_JS)}
            said = page.inner_text("#coverage")
            box = page.locator("#coverage").bounding_box()
            weekday = table_rows(page, "#weekday-table")
            notes = page.inner_text("#season")
            if shots := os.environ.get("FLOWER_REPORT_SCREENSHOT"):  # to look at it by eye
                page.screenshot(path=shots, full_page=True)
        finally:
            browser.close()
    assert errors == []
    assert said.startswith(
        "Loaded: 2024-03-01 … 2024-04-30; not loaded: 2024-02-01 … 2024-02-29, "
        "2024-05-01 … 2024-05-31."
    ), said
    assert box and box["width"] > 600 and box["height"] > 20  # on the page, not hidden
    assert weekday[-1][0] == "Dates loaded" and weekday[-1][1] == "9 of 17", weekday[-1]
    assert notes.count("unknown, not closed") == 2
    # Every chart is drawn, from the loaded dates only.
    assert charts and all(c["chart"] and c["painted"] > 1000 for c in charts.values()), charts
    labels = charts["chart-index"]["labelList"]
    assert min(labels) >= "2024-03-01" and max(labels) <= "2024-04-30"
