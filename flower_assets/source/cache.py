"""Where a date's answers come from: the raw response cache, or the API within its daily quota.

A date outside the correction window that was fetched before costs no API call: its cached
answer is replayed through the same parsing code. A date inside the window (late settlement
corrections happen) or a requested refetch goes to the API. Every call, retries and extra
pages included, first reserves its unit of the key's daily quota (`quota.ApiQuota`: one atomic
conditional upsert, safe across concurrent runs and processes); a refused reservation raises
QuotaExceeded and the call is not made, so the counted calls never exceed the quota. The
answers are kept in `responses.ResponseCache`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date

import polars as pl

from flower_assets.source import clock
from flower_assets.source.categories import Category
from flower_assets.source.client import AtFlowerClient, CategoryDay
from flower_assets.source.clock import kst_today
from flower_assets.source.correction_window import is_refetched
from flower_assets.source.envelope import parse_page
from flower_assets.source.errors import QuotaExceeded
from flower_assets.source.quota import ApiQuota
from flower_assets.source.responses import ResponseCache
from flower_assets.warehouse.database import Warehouse
from flower_assets.warehouse.schemas import API_RESPONSES


@dataclass(frozen=True)
class BackfillEstimate:
    dates: int
    calls_needed: int
    answers_cached: int
    calls_left_today: int
    daily_quota: int

    @property
    def quota_days(self) -> int:
        """KST days the backfill spans: today's remaining calls first, then full quotas."""
        if self.calls_needed <= max(self.calls_left_today, 0):
            return 1
        rest = self.calls_needed - max(self.calls_left_today, 0)
        return (1 if self.calls_left_today > 0 else 0) + -(-rest // self.daily_quota)


def estimate_backfill(
    days: list[date],
    cached: set[tuple[date, str]],
    today: date,
    correction_days: int,
    calls_left_today: int,
    daily_quota: int,
) -> BackfillEstimate:
    """Calls a backfill of `days` needs: one per category and date the cache cannot serve.

    A day whose answer needs several pages costs more; the aT market's busiest days fit one
    page of 5,000 rows, so this is exact for normal volumes.
    """
    needed = reused = 0
    for day in days:
        for category in Category:
            if (day, category.korean_name) in cached and not is_refetched(
                day, today, correction_days
            ):
                reused += 1
            else:
                needed += 1
    return BackfillEstimate(len(days), needed, reused, calls_left_today, daily_quota)


def key_fingerprint(service_key: str) -> str:
    """Identifies a key in the warehouse without storing it."""
    return hashlib.sha256(service_key.encode()).hexdigest()[:12]


@dataclass
class CachedApi:
    client: AtFlowerClient
    warehouse: Warehouse
    daily_quota: int
    correction_days: int
    refetch: bool = False
    today: date | None = None

    def __post_init__(self) -> None:
        self.fingerprint = key_fingerprint(self.client.service_key)
        self.today = self.today or kst_today()
        self.cache_hits = 0
        self.quota = ApiQuota(self.warehouse)
        self.responses = ResponseCache(self.warehouse)
        self.client.reserve_call = self.reserve_call

    def in_correction_window(self, day: date) -> bool:
        return is_refetched(day, self.today, self.correction_days)

    def reserve_call(self, day: date, category: Category) -> None:
        """Count one call against today's quota before it is made, or refuse it."""
        if not self.quota.reserve(self.fingerprint, kst_today(), self.daily_quota):
            raise QuotaExceeded.counted(day, category.label, self.daily_quota, clock.now())

    def fetch_day(self, day: date, category: Category, ask_again: bool = False) -> CategoryDay:
        """The date's answer for one category; `ask_again` bypasses the cache for it."""
        if not (self.refetch or ask_again) and not self.in_correction_window(day):
            cached = self._from_cache(day, category)
            if cached is not None:
                return cached
        # Each call the client makes reserves its unit first (reserve_call): nothing to add here.
        answer = self.client.fetch_day(day, category)
        self.responses.replace(day, category.korean_name, self._pages(answer))
        return answer

    def _pages(self, answer: CategoryDay) -> pl.DataFrame:
        bodies = [body.decode("utf-8", "replace") for body in answer.bodies]
        return pl.DataFrame(
            {
                "auction_date": [answer.auction_date] * len(bodies),
                "flower_gubn": [answer.category.korean_name] * len(bodies),
                "page": list(range(1, len(bodies) + 1)),
                "page_size": [answer.page_size or self.client.page_size] * len(bodies),
                "body": bodies,
                "content_hash": [hashlib.sha256(body).hexdigest() for body in answer.bodies],
                "fetched_at": [answer.fetched_at] * len(bodies),
            },
            schema=API_RESPONSES.polars_schema,
        )

    def _from_cache(self, day: date, category: Category) -> CategoryDay | None:
        answer = cached_answer(self.warehouse, day, category)
        if answer is not None:
            self.cache_hits += 1
        return answer


def cached_answer(warehouse: Warehouse, day: date, category: Category) -> CategoryDay | None:
    """The stored answer of one date and category, parsed as if it had just been fetched."""
    cached = ResponseCache(warehouse).pages(day, category.korean_name)
    if cached.height == 0:
        return None
    # One page: the client accepts an answer only as one page holding the whole day.
    (body,) = cached["body"]
    return CategoryDay(
        day,
        category,
        parse_page(body.encode()).items,
        api_calls=0,
        fetched_at=cached["fetched_at"][0],
        bodies=[],
    )
