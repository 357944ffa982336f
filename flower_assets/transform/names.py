"""Names as a person reads them: the one canonical form of item, variety and grade names.

Masters, records, quarantine's duplicate keys and the lookalike check all use it; the raw layer
keeps names exactly as received.
"""

from __future__ import annotations

import polars as pl

# The longest name the masters and records accept, in characters of the stored (canonical)
# name; longer rows are quarantined as `name_too_long`, on SQLite and PostgreSQL alike.
# PostgreSQL indexes (flower_gubn, name), (flower_type_id, name) and (auction_date, flower_id,
# grade) in btrees whose entries may not exceed 2704 bytes (1/3 of a page), and an NFC
# character takes at most 4 bytes in UTF-8 (3 for Hangul): 200 characters are at most 800
# bytes, far under the limit. Real item and variety names are under 40 characters.
MAX_NAME_CHARS = 200
# Grades are short codes (특1, 상2, 보통): 50 characters (at most 200 bytes) leave ample room.
MAX_GRADE_CHARS = 50
NAME_LIMITS: dict[str, int] = {
    "flower_type": MAX_NAME_CHARS,
    "flower_name": MAX_NAME_CHARS,
    "grade": MAX_GRADE_CHARS,
}
# Characters that are invisible and make two names look identical: zero-width space and
# non-joiner, word joiner, BOM (zero-width no-break space).
_INVISIBLE = "[\u200b\u200c\u2060\ufeff]"
# A zero-width joiner is removed too, except right after an emoji (possibly with a variation
# selector or skin tone), where it joins a ZWJ sequence such as 👩‍🌾 into one emoji.
_STRAY_JOINER = r"(^|[^\p{Extended_Pictographic}\x{FE0F}\x{1F3FB}-\x{1F3FF}])\x{200D}+"


def canonical_name(name: pl.Expr) -> pl.Expr:
    """A name as a person reads it, and as masters, records and duplicate keys use it.

    Unicode NFC (a Hangul syllable decomposed into jamo (NFD) is composed again), no invisible
    characters (zero-width space, non-joiner, joiner outside an emoji sequence, word joiner,
    BOM), no surrounding white space. Full-width letters are kept (NFC, not NFKC). The raw
    layer keeps names exactly as received.
    """
    # Invisible characters go first: jamo they kept apart then compose, so the result is NFC.
    return (
        name.str.replace_all(_INVISIBLE, "")
        .str.replace_all(_STRAY_JOINER, "$1")
        .str.normalize("NFC")
        .str.strip_chars()
    )
