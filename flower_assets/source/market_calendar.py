"""The days the aT Yangjae flower market is closed: Sundays and Korean public holidays.

One calendar for the whole package: `expected_auction_day` does not flag a silent category on
a public holiday, and the synthetic market (`flower_assets.sample.market`) trades on none.

Public holidays come from the `holidays` package (country KR, PUBLIC category): the lunar ones
(Seollal, Buddha's Birthday, Chuseok), substitute holidays, election days and one-off days
such as 2024-10-01, as the law stood in each year. A hand-kept table would have to compute the
lunar dates and follow every change of the law (Labor Day and Constitution Day became public
holidays in 2026), for every year from 2018 on that a warehouse may hold.
"""

from __future__ import annotations

from datetime import date
from functools import lru_cache

import holidays


@lru_cache(maxsize=64)
def _holidays_of(year: int) -> dict[date, str]:
    return dict(holidays.country_holidays("KR", years=year, language="ko"))


def public_holiday(day: date) -> str | None:
    """The Korean name of the public holiday on this day ("부처님오신날"), None on other days."""
    return _holidays_of(day.year).get(day)


def market_closed(day: date) -> bool:
    """Whether the market holds no auction on this day: a Sunday or a public holiday."""
    return day.weekday() == 6 or public_holiday(day) is not None
