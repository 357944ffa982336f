"""A synthetic but realistic Yangjae market: what the aT API would answer for any date.

It generates sample mode's days (`sample.days`) and the benchmarks' fake server. Days follow the
market's calendar (cut flowers Mon/Wed/Fri, foliage Tue/Thu, orchids Tue/Fri, spring orchids on
the second Friday of a month; nothing on Sundays and public holidays), names are real-looking
Korean item, variety and grade names, and each row is aggregated the way the server does it:
max/min over lots, summed quantity and amount, avg = round(total / quantity).

Its seasons, relative to an ordinary day: graduation (February) and the days before Parents'
Day (May 1-8) fetch 1.5x the price, February also trades more; July and August are a lull with
fewer rows, fewer lots per row and lower prices, cut flowers most. On top, every item's price
drifts smoothly from week to week (a category-wide wave and the item's own). Everything is
seeded by date, category and item, so any day is the same bytes every time; the first sample
week (2024-05-06 … 2024-05-12) is drift week 0 and an ordinary May week, so these effects leave
its answers exactly as they were first shipped (pinned by the sample tests).
"""

from __future__ import annotations

import math
import random
import zlib
from datetime import date

from flower_assets.source.categories import Category

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
# Fixed-date public holidays, plus the lunar / substitute ones of the sample period.
_FIXED_HOLIDAYS = {(1, 1), (3, 1), (5, 5), (6, 6), (8, 15), (10, 3), (10, 9), (12, 25)}
_OTHER_HOLIDAYS = {
    date(2024, 5, 6),
    date(2024, 5, 15),
    date(2024, 9, 16),
    date(2024, 9, 17),
    date(2024, 9, 18),
    date(2024, 2, 9),
    date(2024, 2, 12),
    date(2024, 4, 10),  # National Assembly election day
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
# Price drift is counted in Monday-to-Sunday weeks from here; week 0 has no drift.
_DRIFT_EPOCH = date(2024, 5, 6)


def is_holiday(day: date) -> bool:
    return day.weekday() == 6 or (day.month, day.day) in _FIXED_HOLIDAYS or day in _OTHER_HOLIDAYS


def trades(day: date, category: Category) -> bool:
    """Whether the market auctions this category on this day."""
    if is_holiday(day):
        return False
    if category is Category.SPRING_ORCHIDS:
        return day.weekday() == 4 and 8 <= day.day <= 14
    return day.weekday() in _WEEKDAYS[category]


def _rng(*parts: object) -> random.Random:
    return random.Random(zlib.crc32("|".join(map(str, parts)).encode()))


def price_season(day: date, category: Category) -> float:
    """The season's price multiplier: graduation and Parents' Day dear, the summer lull cheap."""
    if (day.month == 5 and day.day <= 8) or day.month == 2:
        return 1.5
    if day.month in (7, 8):
        return _SUMMER_PRICE[category]
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
    # Both are exactly 1.0 on an ordinary day, so they leave its draws and prices untouched.
    max_lots = max(1, round(lots * 2 * busy))
    copies = max(1, round(volume))
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
                if rng.random() > min(1.0, 0.55 * volume * busy / copies):
                    continue
                variety_price = item_price * _rng("v", item, variety).uniform(0.6, 1.6)
                for grade in rng.sample(grades, rng.randint(1, len(grades))):
                    rows.append(
                        _row(
                            rng,
                            day,
                            category,
                            item,
                            variety + suffix,
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
    unit_prices = [max(100, int(round(price * rng.uniform(0.75, 1.25), -1))) for _ in quantities]
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
