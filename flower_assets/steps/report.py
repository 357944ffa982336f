"""What a step reports for one auction date (its metadata, and what to tell the operator), and
the auction dates of a run, listed and named."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta

from flower_assets.source.market_calendar import public_holiday

# Metadata key of a date a step could not load: its cause. The check auction_date_loaded reads it.
LOAD_FAILED = "load_failed"


@dataclass
class DateReport:
    """The date's materialization metadata, and log lines as (level, message)."""

    metadata: dict[str, object]
    messages: list[tuple[str, str]] = field(default_factory=list)


def dates_between(first: date, last: date) -> list[date]:
    """Every calendar date first..last, both included."""
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def dates_label(days: list[date]) -> str:
    """A run's auction dates in a few words: `2024-05-06…2024-05-12 (7 dates)`."""
    return days[0].isoformat() if len(days) == 1 else f"{days[0]}…{days[-1]} ({len(days)} dates)"


class Markdown(str):
    """A metadata text to show as Markdown."""


class Link(str):
    """A metadata text to show as a link."""


# Metadata key that explains the zeros of a date without auction.
NO_AUCTION = "auction"


def no_auction(day: date) -> str:
    """Why a date holds no rows, in the words its zeros are shown with."""
    holiday = public_holiday(day)
    return f"no auction on {day} ({day:%A}{f', public holiday {holiday}' if holiday else ''})"


class StepFailed(Exception):
    """A step's error, naming the step, its auction dates and the warehouse."""


@contextmanager
def working_on(step: str, days: list[date], location: str) -> Iterator[None]:
    """Name the step, the auction dates and the warehouse in any error the block raises."""
    try:
        yield
    except StepFailed:
        raise
    except Exception as exc:
        raise StepFailed(
            f"{step}, auction dates {dates_label(days)}, warehouse {location}: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
