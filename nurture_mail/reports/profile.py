"""How a lead is grouped in the closure report: industry sector, company size, role; pure."""
from __future__ import annotations

import re

__all__ = ["industry_of", "role_of"]

#: NAICS 2-digit sectors (the first digits of a NAICS code).
NAICS_SECTORS = {
    "11": "Agriculture", "21": "Mining", "22": "Utilities", "23": "Construction", "31": "Manufacturing",
    "32": "Manufacturing", "33": "Manufacturing", "42": "Wholesale trade", "44": "Retail", "45": "Retail",
    "48": "Transportation", "49": "Transportation", "51": "Information", "52": "Finance and insurance",
    "53": "Real estate", "54": "Professional services", "55": "Management of companies",
    "56": "Administrative services", "61": "Education", "62": "Health care", "71": "Arts and recreation",
    "72": "Accommodation and food", "81": "Other services", "92": "Public administration",
}
#: SIC divisions by the first two digits (ranges).
SIC_DIVISIONS = [
    (1, 9, "Agriculture"), (10, 14, "Mining"), (15, 17, "Construction"), (20, 39, "Manufacturing"),
    (40, 49, "Transportation"), (50, 51, "Wholesale trade"), (52, 59, "Retail"), (60, 67, "Finance and insurance"),
    (70, 89, "Services"), (91, 99, "Public administration"),
]
UNKNOWN = "(unknown)"
SIZE_BANDS = [(1, 49, "1–49"), (50, 249, "50–249"), (250, 999, "250–999"), (1000, 4999, "1,000–4,999"),
              (5000, None, "5,000+")]
SIZE_ORDER = [label for _, _, label in SIZE_BANDS] + [UNKNOWN]
ROLES = [
    (re.compile(r"\b(chief|ceo|cfo|cto|ciso|cio|coo|cmo|president|founder|owner)\b", re.I), "Executive"),
    (re.compile(r"\b(vp|svp|evp|vice president)\b", re.I), "Vice president"),
    (re.compile(r"\b(director|head of)\b", re.I), "Director / head"),
    (re.compile(r"\b(manager|lead)\b", re.I), "Manager"),
]


def industry_of(naics: str | None, sic: str | None) -> str:
    if naics and naics.strip()[:2] in NAICS_SECTORS:
        return NAICS_SECTORS[naics.strip()[:2]]
    if sic and sic.strip()[:2].isdigit():
        major = int(sic.strip()[:2])
        for low, high, name in SIC_DIVISIONS:
            if low <= major <= high:
                return name
    return UNKNOWN


def role_of(title: str | None) -> str:
    if not title or not title.strip():
        return UNKNOWN
    for pattern, label in ROLES:
        if pattern.search(title):
            return label
    return "Individual contributor"
