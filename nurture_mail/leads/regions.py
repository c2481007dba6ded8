"""Countries to sales regions: an import's ``Country`` column is not a sales region.

Routing (``campaigns/sales_team.yaml`` territories) and scoring match ``Lead.region`` against
sales regions (``AMER``, ``EMEA``, ``APAC``), so a file's "Spain" or "United States" is kept
as the custom field ``country`` and turned into its sales region for ``Lead.region``. A region
cell that names a country is turned the same way; anything else is kept as given.
"""
from __future__ import annotations

import re
from functools import lru_cache

AMER, EMEA, APAC = "AMER", "EMEA", "APAC"

_COUNTRIES: dict[str, tuple[str, ...]] = {
    AMER: (
        "united states", "united states of america", "usa", "us", "u.s.", "u.s.a.", "america", "canada", "ca",
        "mexico", "mx", "brazil", "brasil", "br", "argentina", "ar", "chile", "cl", "colombia", "co", "peru",
        "pe", "venezuela", "ecuador", "uruguay", "paraguay", "bolivia", "costa rica", "panama", "guatemala",
        "puerto rico", "dominican republic", "jamaica", "el salvador", "honduras", "nicaragua", "cuba",
        "trinidad and tobago", "bahamas", "barbados", "north america", "latin america", "latam", "south america",
    ),
    EMEA: (
        "united kingdom", "uk", "gb", "great britain", "britain", "england", "scotland", "wales",
        "northern ireland", "ireland", "ie", "germany", "deutschland", "de", "france", "fr", "spain", "españa",
        "espana", "es", "portugal", "pt", "italy", "italia", "it", "netherlands", "the netherlands", "holland",
        "nl", "belgium", "be", "luxembourg", "lu", "switzerland", "ch", "austria", "at", "denmark", "dk",
        "sweden", "se", "norway", "no", "finland", "fi", "iceland", "poland", "pl", "czech republic", "czechia",
        "cz", "slovakia", "hungary", "hu", "romania", "ro", "bulgaria", "greece", "gr", "croatia", "slovenia",
        "serbia", "estonia", "latvia", "lithuania", "ukraine", "turkey", "türkiye", "tr", "israel", "il",
        "united arab emirates", "uae", "ae", "saudi arabia", "sa", "qatar", "kuwait", "bahrain", "oman", "egypt",
        "eg", "morocco", "tunisia", "nigeria", "ng", "kenya", "ke", "ghana", "south africa", "za", "cyprus",
        "malta", "europe", "middle east", "africa",
    ),
    APAC: (
        "australia", "au", "new zealand", "nz", "japan", "jp", "china", "cn", "hong kong", "hk", "taiwan", "tw",
        "south korea", "korea", "kr", "singapore", "sg", "malaysia", "my", "indonesia", "id", "thailand", "th",
        "vietnam", "viet nam", "vn", "philippines", "ph", "india", "in", "pakistan", "bangladesh", "sri lanka",
        "asia", "asia pacific", "asia-pacific",
    ),
}
_REGION_OF = {name: region for region, names in _COUNTRIES.items() for name in names}


def _key(text: str) -> str:
    return re.sub(r"\s+", " ", text.strip().casefold())


@lru_cache(maxsize=4096)
def sales_region(country: str | None) -> str | None:
    """``"Spain"`` -> ``"EMEA"``; ``None`` for a name we do not know (or a sales region itself).

    Cached: an import asks it for the same few country names on every row.
    """
    if not country:
        return None
    return _REGION_OF.get(_key(country))


def region_value(text: str) -> str:
    """A region cell as ``Lead.region`` stores it: a country's sales region, else the text as given."""
    return sales_region(text) or text
