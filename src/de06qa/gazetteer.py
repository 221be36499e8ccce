"""Vietnam's provinces: the 63 in use until June 2025 and the 34 they merged into.

A question about a merged province ("Tuyên Quang") should still find reports written under an old
name ("Hà Giang"), and a question naming a province that no article covers is a strong sign that
the corpus cannot answer it. Matching is done on accent-folded, lower-cased text so that it also
works for questions typed without diacritics.
"""

from __future__ import annotations

import re
from functools import lru_cache

from de06qa.text import fold

# Resolution 202/2025/QH15 (in force 12 June 2025): new province -> the provinces merged into it.
# The 11 provinces left unchanged map to themselves.
MERGED_2025: dict[str, tuple[str, ...]] = {
    "Tuyên Quang": ("Tuyên Quang", "Hà Giang"),
    "Lào Cai": ("Lào Cai", "Yên Bái"),
    "Thái Nguyên": ("Thái Nguyên", "Bắc Kạn"),
    "Phú Thọ": ("Phú Thọ", "Vĩnh Phúc", "Hòa Bình"),
    "Bắc Ninh": ("Bắc Ninh", "Bắc Giang"),
    "Hưng Yên": ("Hưng Yên", "Thái Bình"),
    "Hải Phòng": ("Hải Phòng", "Hải Dương"),
    "Ninh Bình": ("Ninh Bình", "Hà Nam", "Nam Định"),
    "Quảng Trị": ("Quảng Trị", "Quảng Bình"),
    "Đà Nẵng": ("Đà Nẵng", "Quảng Nam"),
    "Quảng Ngãi": ("Quảng Ngãi", "Kon Tum"),
    "Gia Lai": ("Gia Lai", "Bình Định"),
    "Khánh Hòa": ("Khánh Hòa", "Ninh Thuận"),
    "Lâm Đồng": ("Lâm Đồng", "Đắk Nông", "Bình Thuận"),
    "Đắk Lắk": ("Đắk Lắk", "Phú Yên"),
    "Hồ Chí Minh": ("Hồ Chí Minh", "Bình Dương", "Bà Rịa - Vũng Tàu"),
    "Đồng Nai": ("Đồng Nai", "Bình Phước"),
    "Tây Ninh": ("Tây Ninh", "Long An"),
    "Cần Thơ": ("Cần Thơ", "Sóc Trăng", "Hậu Giang"),
    "Vĩnh Long": ("Vĩnh Long", "Bến Tre", "Trà Vinh"),
    "Đồng Tháp": ("Đồng Tháp", "Tiền Giang"),
    "Cà Mau": ("Cà Mau", "Bạc Liêu"),
    "An Giang": ("An Giang", "Kiên Giang"),
    **{
        p: (p,)
        for p in (
            "Hà Nội",
            "Huế",
            "Lai Châu",
            "Điện Biên",
            "Sơn La",
            "Lạng Sơn",
            "Quảng Ninh",
            "Thanh Hóa",
            "Nghệ An",
            "Hà Tĩnh",
            "Cao Bằng",
        )
    },
}

#: Province (pre-2025 name) -> the province it belongs to since 2025.
NEW_NAME: dict[str, str] = {old: new for new, olds in MERGED_2025.items() for old in olds}
PROVINCES: tuple[str, ...] = tuple(sorted(NEW_NAME))

# Other ways the same province is written; all map to the canonical name above.
ALIASES: dict[str, str] = {
    "Thừa Thiên Huế": "Huế",
    "Thừa Thiên - Huế": "Huế",
    "TP Hồ Chí Minh": "Hồ Chí Minh",
    "TP.HCM": "Hồ Chí Minh",
    "TPHCM": "Hồ Chí Minh",
    "Sài Gòn": "Hồ Chí Minh",
    "Ho Chi Minh City": "Hồ Chí Minh",
    "Bà Rịa Vũng Tàu": "Bà Rịa - Vũng Tàu",
    "Bà Rịa-Vũng Tàu": "Bà Rịa - Vũng Tàu",
    "Vũng Tàu": "Bà Rịa - Vũng Tàu",
    "Đắc Lắc": "Đắk Lắk",
    "Daklak": "Đắk Lắk",
    "Đắk Nông": "Đắk Nông",
    "Bắc Cạn": "Bắc Kạn",
}


def _key(name: str) -> str:
    return " ".join(re.findall(r"\w+", fold(name).lower()))


@lru_cache(maxsize=1)
def _pattern() -> tuple[re.Pattern[str], dict[str, str]]:
    names = {_key(p): p for p in PROVINCES}
    names.update({_key(a): c for a, c in ALIASES.items()})
    # Longest names first so "ba ria vung tau" wins over "vung tau".
    alts = sorted(names, key=len, reverse=True)
    pat = re.compile(r"(?<!\w)(" + "|".join(re.escape(a).replace(r"\ ", r"\W+") for a in alts) + r")(?!\w)")
    return pat, names


def find_provinces(text: str) -> list[str]:
    """Canonical (pre-2025) names of every province mentioned in `text`, in order, with repeats.

    A merged-province name that is also a pre-2025 province ("Tuyên Quang") is reported as itself.
    """
    pat, names = _pattern()
    folded = fold(text).lower()  # (folding drops tone marks wherever they sit)
    return [names[" ".join(re.findall(r"\w+", m.group(1)))] for m in pat.finditer(folded)]


def province_spans(folded: str) -> list[tuple[int, int]]:
    """Where provinces are named in accent-folded, lower-case text (what `fold` gives)."""
    pat, _ = _pattern()
    return [m.span() for m in pat.finditer(folded)]


def covered_by(province: str) -> set[str]:
    """Pre-2025 provinces that a question about `province` may be about (the merged family)."""
    family = set(MERGED_2025.get(province, ()))
    return family | {province} if family else {province}
