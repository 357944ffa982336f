"""The numbers behind the market report's sections (pure polars; no HTML, no I/O).

Each function takes the market tables of the report's period (`price_index.index_values`,
`prices.daily_item_prices`, `prices.variety_price_changes`) and returns plain values: frames,
dataclasses, lists aligned with a list of dates. `report.py` formats and renders them.

Dates the warehouse has not loaded (`coverage.Coverage`) are unknown, never closed days: only
loaded dates are counted, and a peak none of whose dates is loaded has no numbers (None), never 0.

Risers and fallers (`movers`): variety-and-grade pairs ranked by the change of their
quantity-weighted average price, Σ(avg_price × quantity) / Σ quantity rounded half up to whole
won, from the period's first fortnight (first … first+13) to its last (last−13 … last); for a
period shorter than four weeks, its first and last halves. A pair qualifies only when it traded
in both fortnights and in each of them its quantity is at least the median quantity of its
category's pairs in that fortnight (the busier half) and at least `MIN_QUANTITY`, so a pair that
sold a bundle or two cannot top the list. Risers rose (change > 0), fallers fell (< 0); ties go
to the larger quantity of both fortnights together.

Seasonal peaks (`seasonal_windows`): the graduation season (all of February, shown when the
period holds any day of it) and Parents' Day (the run-up week May 1 … 8, shown when the period
holds May 8), each with `SHOULDER_DAYS` either side.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import polars as pl

from flower_assets.market.coverage import Coverage
from flower_assets.market.prices import won
from flower_assets.source.categories import Category

MOVERS_TOP = 5
FORTNIGHT_DAYS = 14
MIN_QUANTITY = 2
PARENTS_DAY = (5, 8)
PARENTS_DAY_RUN_UP = 8  # the peak: May 1 … May 8, when carnations are bought
SHOULDER_DAYS = 14  # the seasonal charts show two weeks either side of a peak

CATEGORIES = [c.korean_name for c in Category]

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


def categories_in(*frames: pl.DataFrame) -> list[str]:
    """The categories the frames hold: the four in `Category` order, then any other, sorted."""
    seen: set[str] = set()
    for frame in frames:
        if "flower_gubn" in frame.columns:
            seen.update(frame["flower_gubn"].unique().to_list())
    return [c for c in CATEGORIES if c in seen] + sorted(seen - set(CATEGORIES))


def aligned(frame: pl.DataFrame, days: list[date], column: str) -> list:
    """`column` of the frame's row on each of `days` (one row a date), None where it has none."""
    values = dict(zip(frame["auction_date"].to_list(), frame[column].to_list(), strict=True))
    return [values.get(day) for day in days]


# ---------------------------------------------------------------------------------------------
# The header: coverage and one row of totals per category


@dataclass(frozen=True)
class CoverageCounts:
    """How many dates of the period are loaded, and how many of those had an auction."""

    loaded: int
    auction_dates: int  # loaded dates with trades
    not_loaded: int

    @property
    def without_auction(self) -> int:
        return self.loaded - self.auction_dates


def coverage_counts(coverage: Coverage, item_prices: pl.DataFrame) -> CoverageCounts:
    """`item_prices`: the period's daily item prices (only loaded dates have rows)."""
    auction_dates = item_prices["auction_date"].n_unique() if item_prices.height else 0
    return CoverageCounts(len(coverage.loaded), auction_dates, len(coverage.not_loaded))


@dataclass(frozen=True)
class CategoryTotals:
    category: str
    auction_dates: int
    quantity: int
    value: int  # traded value, won
    index_end: float | None  # the rebased index on the category's last date, None without one

    @property
    def index_change(self) -> float | None:
        """Percent change of the rebased index over the period (it starts at 100)."""
        return None if self.index_end is None else self.index_end - 100


def category_totals(
    index: pl.DataFrame, prices: pl.DataFrame, categories: list[str]
) -> list[CategoryTotals]:
    """`index`: `rebased_index`; `prices`: the period's daily item prices."""
    totals = []
    for category in categories:
        own = prices.filter(pl.col("flower_gubn") == category)
        idx = index.filter(pl.col("flower_gubn") == category)
        totals.append(
            CategoryTotals(
                category,
                own["auction_date"].n_unique(),
                own["quantity"].sum(),
                own["total_price"].sum(),
                idx["value"].to_list()[-1] if idx.height else None,
            )
        )
    return totals


# ---------------------------------------------------------------------------------------------
# The category price indices


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


@dataclass(frozen=True)
class IndexPoint:
    value: float
    day: date


@dataclass(frozen=True)
class IndexSummary:
    """One category's rebased index over the period: its dates, end, extremes and support."""

    category: str
    auction_dates: int
    end: float
    high: IndexPoint  # the first date of the highest value
    low: IndexPoint  # the first date of the lowest value
    matched_pairs: float  # mean matched pairs per date
    quantity_share: float  # mean quantity share per date, 0…1


def index_summaries(index: pl.DataFrame, categories: list[str]) -> list[IndexSummary]:
    """`index`: `rebased_index`. Categories without index values are left out."""
    summaries = []
    for category in categories:
        own = index.filter(pl.col("flower_gubn") == category)
        if own.is_empty():
            continue
        values, dates = own["value"].to_list(), own["auction_date"].to_list()
        high, low = values.index(max(values)), values.index(min(values))
        summaries.append(
            IndexSummary(
                category,
                own.height,
                values[-1],
                IndexPoint(values[high], dates[high]),
                IndexPoint(values[low], dates[low]),
                own["matched_pairs"].mean(),
                own["quantity_share"].mean(),
            )
        )
    return summaries


# ---------------------------------------------------------------------------------------------
# Risers and fallers (the rule: module docstring)


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


# ---------------------------------------------------------------------------------------------
# Traded quantity by weekday


@dataclass(frozen=True)
class WeekdayVolume:
    """One category's traded quantity and auction dates on each weekday shown (0 where none)."""

    category: str
    quantity: list[int]
    dates: list[int]

    @property
    def per_date(self) -> list[int | None]:
        """The mean quantity per auction date, rounded; None on a weekday without one."""
        return [round(q / n) if n else None for q, n in zip(self.quantity, self.dates, strict=True)]

    @property
    def weekdays(self) -> list[tuple[int, int, int | None]]:
        """(quantity, auction dates, quantity per auction date) on each weekday shown."""
        return list(zip(self.quantity, self.dates, self.per_date, strict=True))


@dataclass(frozen=True)
class WeekdayProfile:
    weekdays: list[
        int
    ]  # ISO weekdays shown: Monday … Saturday, and Sunday if any trade fell on one
    categories: list[WeekdayVolume]  # categories with trades, in the order given


def weekday_profile(prices: pl.DataFrame, categories: list[str]) -> WeekdayProfile:
    """Each category's traded quantity summed by weekday (`prices`: daily item prices)."""
    by_day = (
        prices.with_columns(pl.col("auction_date").dt.weekday().alias("weekday"))
        .group_by("flower_gubn", "weekday")
        .agg(pl.col("quantity").sum(), pl.col("auction_date").n_unique().alias("dates"))
    )
    sunday = by_day.filter(pl.col("weekday") == 7).height > 0
    shown = [d for d in range(1, 8) if d < 7 or sunday]
    volumes = []
    for category in categories:
        own = {r["weekday"]: r for r in by_day.filter(pl.col("flower_gubn") == category).to_dicts()}
        if own:
            volumes.append(
                WeekdayVolume(
                    category,
                    [own[d]["quantity"] if d in own else 0 for d in shown],
                    [own[d]["dates"] if d in own else 0 for d in shown],
                )
            )
    return WeekdayProfile(shown, volumes)


def loaded_weekdays(coverage: Coverage, weekdays: list[int]) -> list[tuple[int, int]]:
    """For each ISO weekday: (its loaded dates, its dates in the period)."""
    return [
        (
            sum(d.isoweekday() == w for d in coverage.loaded),
            sum(d.isoweekday() == w for d in coverage.days),
        )
        for w in weekdays
    ]


# ---------------------------------------------------------------------------------------------
# Seasonal peaks


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

    @property
    def days(self) -> int:
        """The peak's calendar days."""
        return (self.peak_end - self.peak_start).days + 1


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


def daily_quantities(prices: pl.DataFrame) -> pl.DataFrame:
    """`flower_gubn, auction_date, quantity`: one row per category and auction date."""
    return prices.group_by("flower_gubn", "auction_date").agg(pl.col("quantity").sum())


def mean_daily_quantity(daily: pl.DataFrame) -> dict[str, float]:
    """Each category's mean quantity per auction date (`daily`: `daily_quantities`)."""
    means = daily.group_by("flower_gubn").agg(pl.col("quantity").mean())
    return dict(zip(means["flower_gubn"], means["quantity"], strict=True))


@dataclass(frozen=True)
class PeakStats:
    """One category at a peak: volume at the peak against the rest of the period, and the index
    just before, at and after the peak. `peak_dates`, `peak_mean` and `during` are None when
    no date of the peak is loaded (unknown, never 0)."""

    category: str
    loaded_days: int  # the peak's loaded dates, of `Peak.days`
    peak_dates: int | None  # auction dates at the peak
    peak_mean: float | None  # quantity per auction date at the peak
    rest_mean: float | None  # … on the period's other auction dates
    before: IndexPoint | None  # the last index value before the peak
    during: IndexPoint | None  # the highest at the peak (the first date of it)
    after: IndexPoint | None  # the first after the peak

    @property
    def lift(self) -> float | None:
        """Percent more quantity per auction date at the peak than on the rest."""
        if not (self.peak_mean and self.rest_mean):
            return None
        return self.peak_mean / self.rest_mean * 100 - 100


def _point(frame: pl.DataFrame) -> IndexPoint | None:
    if frame.is_empty():
        return None
    (row,) = frame.iter_rows(named=True)
    return IndexPoint(row["value"], row["auction_date"])


def peak_stats(
    category: str,
    peak: Peak,
    daily: pl.DataFrame,
    window_index: pl.DataFrame,
    coverage: Coverage,
) -> PeakStats:
    """`daily`: `daily_quantities` of the whole period; `window_index`: the category's rebased
    index in the peak's window."""
    day = pl.col("auction_date")
    at_peak = day.is_between(peak.peak_start, peak.peak_end)
    own = daily.filter(pl.col("flower_gubn") == category)
    peak_quantity, rest_quantity = own.filter(at_peak)["quantity"], own.filter(~at_peak)["quantity"]
    rest_mean = rest_quantity.mean() if rest_quantity.len() else None
    before = _point(window_index.filter(day < peak.peak_start).tail(1))
    after = _point(window_index.filter(day > peak.peak_end).head(1))
    loaded = len(coverage.loaded_in(peak.peak_start, peak.peak_end))
    if not loaded:
        return PeakStats(category, 0, None, None, rest_mean, before, None, after)
    return PeakStats(
        category,
        loaded,
        peak_quantity.len(),
        peak_quantity.mean() if peak_quantity.len() else None,
        rest_mean,
        before,
        _point(window_index.filter(at_peak).sort("value", descending=True).head(1)),
        after,
    )


@dataclass(frozen=True)
class PeakSeries:
    """One category's daily series in a peak's window, aligned with `PeakWindow.days`."""

    category: str
    volume: list[float | None] | None  # quantity, 100 = the category's mean auction date
    quantity: list[int | None] | None  # None: no trade in the window
    index: list[float | None] | None  # the rebased index; None: no index value in the window


@dataclass(frozen=True)
class PeakWindow:
    peak: Peak
    not_loaded: list[date]  # dates of the window not loaded (unknown, not closed)
    any_loaded: bool  # False: whether the market traded in the window is unknown
    days: list[date]  # the window's auction dates (with trades or index values)
    series: list[PeakSeries]
    stats: list[PeakStats]

    @property
    def peak_positions(self) -> list[int]:
        """The indices in `days` of the peak's auction dates (to shade them)."""
        return [
            i for i, d in enumerate(self.days) if self.peak.peak_start <= d <= self.peak.peak_end
        ]


def peak_windows(
    index: pl.DataFrame,
    prices: pl.DataFrame,
    categories: list[str],
    first: date,
    last: date,
    coverage: Coverage,
) -> list[PeakWindow]:
    """Each peak first..last covers with its series and numbers (`index`: `rebased_index`)."""
    daily = daily_quantities(prices)
    means = mean_daily_quantity(daily)
    windows = []
    for peak in seasonal_windows(first, last):
        inside = pl.col("auction_date").is_between(peak.start, peak.end)
        window_prices, window_index = daily.filter(inside), index.filter(inside)
        days = sorted(set(window_prices["auction_date"]) | set(window_index["auction_date"]))
        series, stats = [], []
        for category in categories:
            own_prices = window_prices.filter(pl.col("flower_gubn") == category)
            own_index = window_index.filter(pl.col("flower_gubn") == category)
            if not (own_prices.height or own_index.height):
                continue
            relative = own_prices.with_columns(
                (pl.col("quantity") / means.get(category, 1) * 100).round(1).alias("relative")
            )
            series.append(
                PeakSeries(
                    category,
                    aligned(relative, days, "relative") if own_prices.height else None,
                    aligned(own_prices, days, "quantity") if own_prices.height else None,
                    aligned(own_index, days, "value") if own_index.height else None,
                )
            )
            stats.append(peak_stats(category, peak, daily, own_index, coverage))
        windows.append(
            PeakWindow(
                peak,
                coverage.not_loaded_in(peak.start, peak.end),
                bool(coverage.loaded_in(peak.start, peak.end)),
                days,
                series,
                stats,
            )
        )
    return windows
