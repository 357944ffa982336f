"""What a re-fetch changed in an auction date's answer, and how to undo it (pure, no Dagster)."""

from __future__ import annotations

import json
import unicodedata
from datetime import UTC, date, datetime

import polars as pl

from flower_assets.source.categories import Category
from flower_assets.source.envelope import ApiItem
from flower_assets.transform import revisions, unchanged
from flower_assets.transform.raw import raw_rows
from flower_assets.warehouse.schemas import RAW
from flower_assets_tests.conftest import item

DAY = "2024-05-10"


def raw(rows: list[tuple[Category, dict]]) -> pl.DataFrame:
    """Raw rows of DAY from (category, API item) pairs, built the way the raw step builds them."""
    frames = [
        raw_rows(
            [ApiItem(raw=json.dumps(fields, ensure_ascii=False).encode(), fields=fields)],
            date.fromisoformat(DAY),
            category,
            datetime(2024, 5, 11, tzinfo=UTC),
        )
        for category, fields in rows
    ]
    return pl.concat(frames) if frames else RAW.empty()


CUT = Category.CUT_FLOWERS


def test_diff_pairs_removed_and_added_rows_of_one_record_key_as_changed():
    old = raw([(CUT, item(good="레드")), (CUT, item(good="화이트")), (CUT, item(good="핑크"))])
    new = raw(
        [
            (CUT, item(good="레드", avg_amt="11000")),
            (CUT, item(good="핑크")),
            # Keys are canonical: a name sent in NFD is recorded as a person reads it.
            (CUT, item(good=unicodedata.normalize("NFD", "노랑"))),
            (Category.ORCHIDS, item(gubn="난", pum="호접란", good="만천홍", grade="특")),
        ]
    )
    changes = revisions.diff_answers(old, new)
    by_change = {(row["variety_name"], row["change"]): row for row in changes.iter_rows(named=True)}
    assert set(by_change) == {
        ("레드", "changed"),
        ("화이트", "removed"),
        ("노랑", "added"),
        ("만천홍", "added"),
    }
    red = by_change[("레드", "changed")]
    assert (red["old_avg_price"], red["new_avg_price"]) == (10000, 11000)
    assert (red["old_quantity"], red["new_quantity"]) == (50, 50)
    assert by_change[("만천홍", "added")]["flower_gubn"] == "난"


def test_diff_keeps_duplicates_and_undo_gives_back_the_old_answer_exactly():
    twice = item(good="레드")
    old = raw([(CUT, twice), (CUT, twice), (CUT, item(good="화이트"))])
    new = raw([(CUT, twice), (CUT, item(good="화이트", grade=None)), (CUT, item(good="핑크"))])
    changes = revisions.diff_answers(old, new)
    assert sorted(changes["change"].to_list()) == ["added", "added", "removed", "removed"]
    assert unchanged.content_hash(revisions.undo(new, changes)) == unchanged.content_hash(old)
    # The same answer again: nothing changed.
    assert revisions.diff_answers(old, old).height == 0
    assert revisions.diff_answers(RAW.empty(), new)["change"].to_list() == ["added"] * 3
