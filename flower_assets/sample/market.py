"""A synthetic but realistic Yangjae market: what the aT API would answer for any date.

It generates sample mode's days (`sample.days`) and the benchmarks' fake server. Days follow the
market's calendar (cut flowers Mon/Wed/Fri, foliage Tue/Thu, orchids Tue/Fri, spring orchids on
the second Friday of a month; nothing on Sundays and Korean public holidays, the calendar
`expected_auction_day` knows too: `source.market_calendar`), names are real-looking Korean
item, variety and grade names, and each row is aggregated the way the server does it: max/min
over lots, summed quantity and amount, avg = round(total / quantity).

Like a real market it trades mostly the same varieties from one auction day to the next: each
variety is in season for a stretch of weeks (a cycle of its own), misses an auction now and
then, and comes in its usual grades; so the price index's links rest on most of a day's
quantity, and prices move against their own history no more than the checks tolerate.

Its seasons, relative to an ordinary day: graduation (February) and the days before Parents'
Day (May 8) fetch up to 1.5x the price, reached and left over days, except that it falls at
once after Parents' Day; February also trades more; July and August are a lull with fewer rows,
fewer lots per row and lower prices, cut flowers most. On top, every item's price drifts
smoothly from week to week (a category-wide wave and the item's own). Everything is seeded by
date, category, item and variety, so any day is the same bytes every time (the first sample
week, 2024-05-06 … 2024-05-12, is pinned by the sample tests); its checks pass on every sample
date (`flower_assets_tests/sample/test_sample_passes_checks.py`).
"""

from __future__ import annotations

import math
import random
import zlib
from datetime import date
from functools import lru_cache
from itertools import pairwise

from flower_assets.source.categories import Category
from flower_assets.source.market_calendar import market_closed

_CUT_ITEMS = (
    "장미",
    "국화",
    "백합",
    "카네이션",
    "안개꽃",
    "거베라",
    "튤립",
    "프리지아",
    "리시안서스",
    "수국",
    "작약",
    "스토크",
    "알스트로메리아",
    "금어초",
    "해바라기",
    "글라디올러스",
    "라넌큘러스",
    "칼라",
    "델피니움",
    "소국",
    "스프레이카네이션",
    "스타티스",
    "공작초",
    "유칼립투스",
)
_FOLIAGE_ITEMS = (
    "몬스테라",
    "산세베리아",
    "스킨답서스",
    "고무나무",
    "드라세나",
    "아레카야자",
    "스파티필럼",
    "안스리움",
    "벤자민",
    "금전수",
    "행운목",
    "테이블야자",
    "칼라데아",
    "필로덴드론",
    "율마",
)
_ORCHID_ITEMS = ("호접란", "심비디움", "덴드로비움", "온시디움", "동양란", "풍란", "카틀레야")
_SPRING_ORCHID_ITEMS = ("춘란",)
_SPRING_ORCHID_VARIETIES = (
    "소심",
    "중투",
    "복륜",
    "홍화",
    "황화",
    "주금화",
    "두화",
    "산반",
    "서호반",
    "사피",
)
_COLOURS = (
    "레드",
    "핑크",
    "화이트",
    "옐로우",
    "오렌지",
    "퍼플",
    "그린",
    "피치",
    "라벤더",
    "스위트",
    "딥",
)
_NAMES = (
    "아발란체",
    "나오미",
    "엔젤",
    "비탈",
    "캔디",
    "스타",
    "드림",
    "하트",
    "문라이트",
    "프라우드",
    "마리아",
    "루나",
    "셀리나",
    "메두사",
    "시베리아",
    "소르본",
    "돈셀",
    "마스터",
    "노비아",
    "샤로트",
    "카사블랑카",
    "에스페란스",
    "프리덤",
    "몬디알",
    "데코라",
    "벨라",
    "오로라",
    "클레오",
    "줄리엣",
    "티파니",
    "레이나",
    "코랄",
    "발레리나",
    "사만다",
    "카멜리아",
    "그레이스",
    "에메랄드",
    "체리",
)
_CUT_GRADES = ("특1", "특2", "상1", "상2", "보1", "보2")
_PLANT_GRADES = ("특", "상", "보")
_GRADE_FACTOR = {
    "특1": 1.6,
    "특2": 1.35,
    "상1": 1.1,
    "상2": 0.95,
    "보1": 0.7,
    "보2": 0.55,
    "특": 1.5,
    "상": 1.0,
    "보": 0.6,
}

# (items, varieties per item, base price in won, typical lots per row, bundles/pots per lot)
_PROFILE: dict[Category, tuple[tuple[str, ...], int, int, int, int]] = {
    Category.CUT_FLOWERS: (_CUT_ITEMS, 60, 6000, 6, 12),
    Category.FOLIAGE: (_FOLIAGE_ITEMS, 14, 15000, 3, 4),
    Category.ORCHIDS: (_ORCHID_ITEMS, 18, 30000, 3, 3),
    Category.SPRING_ORCHIDS: (_SPRING_ORCHID_ITEMS, 10, 80000, 1, 1),
}
_WEEKDAYS: dict[Category, frozenset[int]] = {
    Category.CUT_FLOWERS: frozenset({0, 2, 4}),
    Category.FOLIAGE: frozenset({1, 3}),
    Category.ORCHIDS: frozenset({1, 4}),
}
# How much trades (share of varieties traded, lots per row) relative to an ordinary day.
_GRADUATION_ACTIVITY = {
    Category.CUT_FLOWERS: 1.25,
    Category.FOLIAGE: 1.1,
    Category.ORCHIDS: 1.1,
    Category.SPRING_ORCHIDS: 1.0,
}
_SUMMER_ACTIVITY = {
    Category.CUT_FLOWERS: 0.7,
    Category.FOLIAGE: 0.85,
    Category.ORCHIDS: 0.85,
    Category.SPRING_ORCHIDS: 0.85,
}
_SUMMER_PRICE = {
    Category.CUT_FLOWERS: 0.85,
    Category.FOLIAGE: 0.92,
    Category.ORCHIDS: 0.9,
    Category.SPRING_ORCHIDS: 0.95,
}
# The share of varieties that trade on an ordinary day; of those in season, the share absent on
# a given auction day; of a variety's usual grades, the share absent on a given day.
_TRADED = 0.55
_ABSENT = 0.08
_GRADE_ABSENT = 0.12
# How long a variety's cycle of being in season and out of it lasts, in days.
_SEASON_DAYS: dict[Category, tuple[float, float]] = {
    Category.CUT_FLOWERS: (42.0, 120.0),
    Category.FOLIAGE: (90.0, 240.0),
    Category.ORCHIDS: (90.0, 240.0),
    Category.SPRING_ORCHIDS: (240.0, 480.0),
}
# Dear seasons: (month, day) and the price multiplier on it; linear in between. Graduation
# ceremonies and Valentine's Day fill February; carnations climb towards Parents' Day (May 8).
_DEAR_SEASONS = (
    (((1, 20), 1.0), ((2, 5), 1.5), ((2, 20), 1.5), ((3, 10), 1.0)),
    (((4, 22), 1.0), ((5, 4), 1.5), ((5, 8), 1.5), ((5, 9), 1.0)),
)
# Price drift is counted in Monday-to-Sunday weeks from here; week 0 has no drift.
_DRIFT_EPOCH = date(2024, 5, 6)


def trades(day: date, category: Category) -> bool:
    """Whether the market auctions this category on this day."""
    if market_closed(day):
        return False
    if category is Category.SPRING_ORCHIDS:
        return day.weekday() == 4 and 8 <= day.day <= 14
    return day.weekday() in _WEEKDAYS[category]


def _rng(*parts: object) -> random.Random:
    return random.Random(zlib.crc32("|".join(map(str, parts)).encode()))


def price_season(day: date, category: Category) -> float:
    """The season's price multiplier: graduation and Parents' Day dear, the summer lull cheap.

    Demand builds up and ebbs over days, not overnight: the multiplier moves linearly between
    the points of `_DEAR_SEASONS` (1 outside them), except that it falls at once the day after
    Parents' Day.
    """
    if day.month in (7, 8):
        return _SUMMER_PRICE[category]
    for points in _DEAR_SEASONS:
        for ((m0, d0), low), ((m1, d1), high) in pairwise(points):
            start, end = date(day.year, m0, d0), date(day.year, m1, d1)
            if start <= day <= end:
                return low + (high - low) * (day - start).days / (end - start).days
    return 1.0


def activity(day: date, category: Category) -> float:
    """The season's trading multiplier: February busier, July and August quieter."""
    if day.month == 2:
        return _GRADUATION_ACTIVITY[category]
    if day.month in (7, 8):
        return _SUMMER_ACTIVITY[category]
    return 1.0


def price_drift(day: date, category: Category, item: str) -> float:
    """The item's price level this week, relative to week 0 (2024-05-06 … 2024-05-12).

    Two smooth waves over the week number: one the whole category shares (4-7% over
    about half a year), one the item's own (3-8% over 6-16 weeks), each phase seeded by the
    category and item. Constant within a week, exactly 1 in week 0.
    """
    week = (day - _DRIFT_EPOCH).days // 7
    waves = []
    for rng, amplitude, period in (
        (_rng("drift", category.code), (0.04, 0.07), (20.0, 30.0)),
        (_rng("drift", category.code, item), (0.03, 0.08), (6.0, 16.0)),
    ):
        waves.append((rng.uniform(*amplitude), rng.uniform(*period), rng.uniform(0, 2 * math.pi)))

    def level(w: int) -> float:
        return sum(a * math.sin(2 * math.pi * w / p + phase) for a, p, phase in waves)

    return math.exp(level(week) - level(0))


def _varieties(category: Category, item: str, count: int) -> list[str]:
    if category is Category.SPRING_ORCHIDS:
        return list(_SPRING_ORCHID_VARIETIES)
    rng = _rng("varieties", item)
    names = sorted({rng.choice(_COLOURS) + rng.choice(_NAMES) for _ in range(count * 2)})
    return rng.sample(names, min(count, len(names)))


@lru_cache(maxsize=1 << 18)
def _in_season(category: Category, item: str, variety: str) -> tuple[float, float]:
    """The variety's season: its cycle in days and where in it the epoch falls (0 … 1)."""
    rng = _rng("season", category.code, item, variety)
    return rng.uniform(*_SEASON_DAYS[category]), rng.random()


def offered(day: date, category: Category, item: str, variety: str, share: float) -> bool:
    """Whether the variety is in season on this day, so that growers send it to auction.

    Each variety runs through a cycle of its own: it is in season for the first `share` of it,
    a stretch of consecutive weeks, then out. `share` is the part of the varieties in season
    on the day (the season's activity lowers it), so consecutive auction days trade mostly the
    same varieties, as a real market does.
    """
    cycle, phase = _in_season(category, item, variety)
    return (phase + (day - _DRIFT_EPOCH).days / cycle) % 1.0 < share


@lru_cache(maxsize=1 << 18)
def _usual_grades(item: str, variety: str, grades: tuple[str, ...]) -> tuple[str, ...]:
    """The grades a variety is usually sorted into: at least two where there are two."""
    rng = _rng("grades", item, variety)
    return tuple(rng.sample(grades, rng.randint(min(2, len(grades)), len(grades))))


def day_items(day: date, category: Category, volume: float = 1.0) -> list[dict[str, str]]:
    """The rows the server would answer for this day and category, ordered by quantity desc.

    `volume` scales how many variety-and-grade rows trade (a larger market or source).
    """
    if not trades(day, category):
        return []
    items, per_item, base_price, lots, per_lot = _PROFILE[category]
    grades = _CUT_GRADES if category is Category.CUT_FLOWERS else _PLANT_GRADES
    rng = _rng("day", day.isoformat(), category.code)
    season, busy = price_season(day, category), activity(day, category)
    max_lots = max(1, round(lots * 2 * busy))
    copies = max(1, round(volume))
    # The share of varieties in season, so that with the day's absences 55% trade on an
    # ordinary day (`busy` more or less in the seasons).
    in_season = min(1.0, _TRADED * volume * busy / copies / (1 - _ABSENT))
    rows: list[dict[str, str]] = []
    for item in items:
        item_price = (
            base_price
            * _rng("price", item).uniform(0.4, 2.2)
            * season
            * price_drift(day, category, item)
        )
        for copy in range(copies):
            suffix = "" if copy == 0 else str(copy + 1)
            for variety in _varieties(category, item, per_item):
                name = variety + suffix
                # In season, and not missing today (a grower skipping one auction).
                if not offered(day, category, item, name, in_season) or rng.random() < _ABSENT:
                    continue
                variety_price = item_price * _rng("v", item, variety).uniform(0.6, 1.6)
                usual = _usual_grades(item, name, grades)
                today = [grade for grade in usual if rng.random() >= _GRADE_ABSENT] or [usual[0]]
                for grade in today:
                    rows.append(
                        _row(
                            rng,
                            day,
                            category,
                            item,
                            name,
                            grade,
                            variety_price * _GRADE_FACTOR[grade],
                            max_lots,
                            per_lot,
                        )
                    )
    rows.sort(key=lambda row: -int(row["totQty"]))
    return rows


def _row(
    rng: random.Random,
    day: date,
    category: Category,
    item: str,
    variety: str,
    grade: str,
    price: float,
    max_lots: int,
    per_lot: int,
) -> dict[str, str]:
    quantities = [rng.randint(1, per_lot * 2) for _ in range(rng.randint(1, max_lots))]
    unit_prices = [max(100, int(round(price * rng.uniform(0.85, 1.15), -1))) for _ in quantities]
    total_qty = sum(quantities)
    total_amt = sum(q * p for q, p in zip(quantities, unit_prices, strict=True))
    return {
        "saleDate": day.isoformat(),
        "flowerGubn": category.korean_name,
        "pumName": item,
        "goodName": variety,
        "lvNm": grade,
        "maxAmt": str(max(unit_prices)),
        "minAmt": str(min(unit_prices)),
        "avgAmt": str(round(total_amt / total_qty)),
        "totAmt": str(total_amt),
        "totQty": str(total_qty),
    }
