"""The four auction categories (flowerGubn) of the aT Yangjae flower market."""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum


class Category(Enum):
    """A category as the API knows it: the code we send and the Korean name it sends back."""

    CUT_FLOWERS = ("1", "절화", "cut flowers")
    FOLIAGE = ("2", "관엽", "foliage plants")
    ORCHIDS = ("3", "난", "orchids")
    SPRING_ORCHIDS = ("4", "춘란", "Korean spring orchids")

    def __init__(self, code: str, korean_name: str, english_name: str) -> None:
        self.code = code
        self.korean_name = korean_name
        self.english_name = english_name

    @property
    def label(self) -> str:
        return f"{self.korean_name} ({self.english_name})"

    @classmethod
    def from_code(cls, code: str) -> Category:
        for category in cls:
            if category.code == code:
                return category
        raise ValueError(f"unknown flowerGubn code {code!r}; known codes are 1-4")


KOREAN_NAMES: tuple[str, ...] = tuple(c.korean_name for c in Category)


def every_category(counts: Mapping[str, int]) -> dict[str, int]:
    """Counts by Korean category name for all four categories, 0 where none."""
    return {name: int(counts.get(name, 0)) for name in KOREAN_NAMES}
