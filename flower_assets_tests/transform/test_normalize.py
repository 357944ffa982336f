"""Pure normalization: typing raw items, the quarantine split, items, varieties, records."""

from __future__ import annotations

import json
import unicodedata
from datetime import UTC, date, datetime

import polars as pl
import pytest

from flower_assets.source.categories import Category
from flower_assets.source.envelope import ApiItem
from flower_assets.transform import names
from flower_assets.transform.normalize import auction_records, items_seen, varieties_seen
from flower_assets.transform.quarantine import split_loadable
from flower_assets.transform.raw import raw_rows, rows_per_category
from flower_assets.warehouse.schemas import RAW, BiddingFlowers, PublicBiddingFlowers
from flower_assets_tests.conftest import item

DAY = date(2024, 5, 10)
FETCHED = datetime(2024, 5, 10, 21, 0, tzinfo=UTC)


def api_items(*rows: dict) -> list[ApiItem]:
    return [ApiItem(raw=json.dumps(r, ensure_ascii=False).encode(), fields=r) for r in rows]


def raw(*rows: dict, category: Category = Category.CUT_FLOWERS) -> pl.DataFrame:
    return raw_rows(api_items(*rows), DAY, category, FETCHED)


def test_raw_rows_type_amounts_and_keep_texts_verbatim():
    frame = raw(item(pum=" 장미 ", max_amt="1,800", min_amt="900", tot_qty="12"))
    PublicBiddingFlowers.validate(frame)
    row = frame.row(0, named=True)
    assert row["auction_date"] == DAY and row["flower_gubn"] == "절화"
    assert row["flower_type"] == " 장미 "  # verbatim in the raw layer
    assert (row["max_price"], row["min_price"], row["quantity"]) == (1800, 900, 12)
    assert json.loads(row["raw_item"])["maxAmt"] == "1,800"
    assert row["fetched_at"] == FETCHED


@pytest.mark.parametrize("value", ["12.5", "abc", "", "1,80,0", None, "--5"])
def test_amounts_that_are_not_integers_are_null_in_raw(value):
    assert raw(item(tot_amt=value))["total_price"][0] is None


def test_empty_input_gives_an_empty_frame_of_the_raw_schema():
    frame = raw()
    assert frame.height == 0 and dict(frame.schema) == RAW.polars_schema


def reasons(frame: pl.DataFrame) -> list[str]:
    return split_loadable(frame)[1]["reason"].to_list()


@pytest.mark.parametrize(
    ("row", "reason", "phrase"),
    [
        (item(tot_qty="abc"), "non_numeric_amount", "totQty is abc"),
        (item(avg_amt="-5", min_amt="-10"), "negative_amount", "negative"),
        (item(tot_qty="0"), "non_positive_quantity", "totQty is 0"),
        (item(min_amt="9000", max_amt="8000"), "min_above_max", "minAmt 9000 is above maxAmt 8000"),
        (item(good="  "), "empty_name", "goodName"),
        (item(day="2024-05-09"), "wrong_sale_date", "saleDate 2024-05-09"),
        (item(gubn="다육"), "unknown_category", "flowerGubn 다육"),
        (item(gubn="관엽"), "category_mismatch", "관엽 answered a request for 절화"),
        (
            {k: v for k, v in item().items() if k != "lvNm"} | {"lv": "특1"},
            "missing_field",
            "lvNm is missing",
        ),
    ],
)
def test_each_broken_row_kind_is_quarantined_with_its_reason(row, reason, phrase):
    loadable, rejected = split_loadable(raw(item(good="정상"), row))
    assert loadable["flower_name"].to_list() == ["정상"]
    assert rejected["reason"].to_list() == [reason]
    assert phrase in rejected["reason_text"][0]
    assert json.loads(rejected["raw_item"][0]) == row


# A row that traded (positive totQty) at an average or a total of zero: a price that cannot be
# right. Loaded, it would be a variety at 0 won: a -100% change, the period's top faller, and
# its bundles at 0 won in the item's daily average.
@pytest.mark.parametrize(
    ("row", "phrases"),
    [
        (
            item(tot_qty="3000", avg_amt="0", min_amt="0", max_amt="6000", tot_amt="15000000"),
            ("avgAmt 0", "totAmt 15000000", "totQty 3000"),
        ),
        (item(tot_qty="3000", avg_amt="5000", tot_amt="0"), ("avgAmt 5000", "totAmt 0")),
        (
            item(tot_qty="3000", avg_amt="0", min_amt="0", max_amt="0", tot_amt="0"),
            ("avgAmt 0", "totAmt 0", "totQty 3000"),
        ),
    ],
    ids=["average-zero-total-positive", "total-zero-average-positive", "all-amounts-zero"],
)
def test_a_traded_row_priced_at_zero_is_quarantined_as_price_not_positive(row, phrases):
    loadable, rejected = split_loadable(raw(item(good="정상"), row | {"goodName": "영원"}))
    assert loadable["flower_name"].to_list() == ["정상"]
    assert rejected["reason"].to_list() == ["price_not_positive"]
    for phrase in phrases:
        assert phrase in rejected["reason_text"][0], rejected["reason_text"][0]
    assert json.loads(rejected["raw_item"][0]) == row | {"goodName": "영원"}  # verbatim


@pytest.mark.parametrize(
    "row",
    [
        item(tot_qty="3000", avg_amt="-5000", min_amt="-6000", tot_amt="15000000"),
        item(tot_qty="3000", avg_amt="5000", tot_amt="-15000000"),
    ],
    ids=["average-negative", "total-negative"],
)
def test_a_negative_price_is_quarantined_too_as_the_negative_amount_it_is(row):
    """Every negative amount is `negative_amount`, the earlier rule: one reason per row."""
    loadable, rejected = split_loadable(raw(item(good="정상"), row))
    assert loadable["flower_name"].to_list() == ["정상"]
    assert rejected["reason"].to_list() == ["negative_amount"]


def test_zero_quantity_keeps_its_reason_and_a_minimum_of_zero_still_loads():
    zero_everything = item(
        good="a", tot_qty="0", avg_amt="0", min_amt="0", max_amt="0", tot_amt="0"
    )
    min_zero = item(good="b", min_amt="0")  # a lot sold at 0 won among others: the day averages
    loadable, rejected = split_loadable(raw(zero_everything, min_zero))
    assert rejected["reason"].to_list() == ["non_positive_quantity"]
    assert loadable["flower_name"].to_list() == ["b"]


def test_conflicting_rows_with_one_key_are_all_kept_aside_but_an_identical_copy_only_once():
    conflicting = raw(item(), item(avg_amt="9999"), item(good="다른"))
    loadable, rejected = split_loadable(conflicting)
    assert loadable["flower_name"].to_list() == ["다른"]
    assert rejected["reason"].to_list() == ["duplicate_key", "duplicate_key"]

    copies = raw(item(), item())
    loadable, rejected = split_loadable(copies)
    assert loadable.height == 1 and rejected["reason"].to_list() == ["duplicate_row"]


def test_every_raw_row_lands_in_exactly_one_side():
    rows = [item(good=f"v{i}", tot_qty=str(i)) for i in range(-2, 5)]
    frame = raw(*rows)
    loadable, rejected = split_loadable(frame)
    assert loadable.height + rejected.height == frame.height == 7
    assert rejected.height == 3  # quantities -2, -1, 0


def _masters(loadable: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    items = (
        items_seen(loadable)
        .with_row_index("id", offset=1)
        .with_columns(pl.col("id").cast(pl.Int64))
    )
    varieties = (
        varieties_seen(loadable, items)
        .with_row_index("id", offset=1)
        .with_columns(pl.col("id").cast(pl.Int64))
    )
    return items, varieties


def test_items_varieties_and_records_link_every_row():
    frame = pl.concat(
        [
            raw(
                item(pum="장미", good="레드", grade="특1"),
                item(pum="장미 ", good="레드", grade="상1"),
                item(pum="국화", good="백마", grade="상2"),
            ),
            raw(
                item(gubn="난", pum="호접란", good="만천홍", grade="특"), category=Category.ORCHIDS
            ),
        ]
    )
    loadable, _ = split_loadable(frame)
    items, varieties = _masters(loadable)
    assert sorted(items["name"].to_list()) == ["국화", "장미", "호접란"]  # "장미 " is the same item
    assert items.filter(pl.col("name") == "호접란")["flower_gubn"].to_list() == ["난"]
    assert varieties.height == 3
    records = auction_records(loadable, items, varieties)
    BiddingFlowers.validate(records)
    assert records.height == 4 and records["flower_id"].null_count() == 0
    assert (
        records.filter(pl.col("grade") == "상1")["flower_id"].item()
        == records.filter(pl.col("grade") == "특1")["flower_id"].item()
    )
    assert rows_per_category(frame) == {"절화": 3, "관엽": 0, "난": 1, "춘란": 0}


def test_first_and_last_seen_dates_span_the_dates_in_the_frame():
    later = raw_rows(
        api_items(item(day="2024-05-12")), date(2024, 5, 12), Category.CUT_FLOWERS, FETCHED
    )
    loadable, _ = split_loadable(pl.concat([raw(item()), later]))
    seen = items_seen(loadable).row(0, named=True)
    assert (seen["first_seen_date"], seen["last_seen_date"]) == (DAY, date(2024, 5, 12))


def test_records_refuse_rows_whose_variety_is_not_in_the_master_yet():
    loadable, _ = split_loadable(raw(item()))
    items, _ = _masters(loadable)
    empty_varieties = pl.DataFrame(
        schema={"id": pl.Int64, "flower_type_id": pl.Int64, "name": pl.String}
    )
    with pytest.raises(LookupError, match="materialize flowers for this auction date first"):
        auction_records(loadable, items, empty_varieties)


# The documented limits, in characters of the name as the masters store it.
NAME_LIMIT, GRADE_LIMIT = 200, 50


def test_the_length_limits_are_the_documented_ones():
    assert (names.MAX_NAME_CHARS, names.MAX_GRADE_CHARS) == (NAME_LIMIT, GRADE_LIMIT)


@pytest.mark.parametrize(
    ("row", "phrase"),
    [
        (item(good="가" * 2000), "goodName (flower_name) is 2000 characters long"),
        (
            item(pum="나" * (NAME_LIMIT + 1)),
            f"pumName (flower_type) is {NAME_LIMIT + 1} characters",
        ),
        (item(grade="특" * (GRADE_LIMIT + 1)), f"lvNm (grade) is {GRADE_LIMIT + 1} characters"),
    ],
)
def test_a_name_longer_than_its_limit_is_quarantined_with_the_field_length_and_limit(row, phrase):
    loadable, rejected = split_loadable(raw(item(good="정상"), row))
    assert loadable["flower_name"].to_list() == ["정상"]
    assert rejected["reason"].to_list() == ["name_too_long"]
    field = "lvNm" if "lvNm" in phrase else "name"
    limit = GRADE_LIMIT if field == "lvNm" else NAME_LIMIT
    assert (
        phrase in rejected["reason_text"][0] and f"limit of {limit}" in rejected["reason_text"][0]
    )
    assert json.loads(rejected["raw_item"][0]) == row  # verbatim


def test_names_at_the_limit_load_counting_what_the_masters_store():
    rows = raw(
        item(
            pum=" " + "나" * NAME_LIMIT + "\u200b", good="가" * NAME_LIMIT, grade="특" * GRADE_LIMIT
        )
    )
    loadable, rejected = split_loadable(rows)
    assert rejected.height == 0 and loadable.height == 1


@pytest.mark.parametrize(
    ("received", "stored"),
    [
        (unicodedata.normalize("NFD", "장미"), "장미"),
        ("특1\u200b", "특1"),
        ("\ufeff레드 ", "레드"),
        ("\u200c백\u2060마\u200d", "백마"),
        (" 공백국화  ", "공백국화"),
        ("👩\u200d🌾 농부네", "👩\u200d🌾 농부네"),  # a ZWJ emoji sequence stays one emoji
        ("ＡＢＣ전각", "ＡＢＣ전각"),  # NFC, not NFKC: full-width letters are kept
        # Jamo kept apart by a zero-width space compose once it is gone: the result is NFC.
        ("\u110c\u200b\u1161\u11bc\u1106\u1175", "장미"),
    ],
)
def test_canonical_name_is_nfc_without_invisible_characters_or_outer_spaces(received, stored):
    frame = pl.DataFrame({"name": [received]})
    assert frame.select(names.canonical_name(pl.col("name")))["name"].item() == stored
    # Stored names are canonical already: normalizing again changes nothing.
    again = pl.DataFrame({"name": [stored]}).select(names.canonical_name(pl.col("name")))
    assert again["name"].item() == stored


def test_unicode_twins_are_one_item_variety_and_grade_in_masters_records_and_keys():
    nfd_rose = unicodedata.normalize("NFD", "장미")
    frame = raw(
        item(pum="장미", good="레드", grade="특1"),
        item(pum=nfd_rose, good="화이트", grade="특1"),
        item(pum="장미", good="레드\u200b", grade="상1\u200b"),
        item(pum="국화", good="백마", grade="특1"),
        item(pum=unicodedata.normalize("NFD", "국화"), good="백마", grade="특1"),
        item(pum="카네이션", good="노을", grade="특1"),
        item(pum="카네이션", good="노을", grade="특1\u200b", avg_amt="9000"),
        item(pum="안개꽃", good="\u200b", grade="특1"),  # nothing visible: an empty name
    )
    loadable, rejected = split_loadable(frame)
    assert sorted(json.loads(r)["goodName"] for r in rejected["raw_item"]) == sorted(
        ["백마", "백마", "노을", "노을", "\u200b"]
    )
    assert sorted(rejected["reason"]) == ["duplicate_key"] * 4 + ["empty_name"]
    assert sorted(loadable["flower_type"]) == sorted(["장미", nfd_rose, "장미"])  # verbatim
    items, varieties = _masters(loadable)
    assert items["name"].to_list() == ["장미"]
    assert sorted(varieties["name"]) == ["레드", "화이트"]
    records = auction_records(loadable, items, varieties)
    assert sorted(records["grade"]) == ["상1", "특1", "특1"]
    assert records.select("flower_id", "grade").n_unique() == 3
