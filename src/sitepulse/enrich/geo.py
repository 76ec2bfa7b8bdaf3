"""Country and region from a MaxMind-format database (.mmdb)."""

from __future__ import annotations

import functools
import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import maxminddb

# ISO 3166-1 alpha-2, as MaxMind-format databases give it.
_COUNTRY_CODE = re.compile(r"[A-Z]{2}")


@dataclass(frozen=True, slots=True)
class Place:
    country: str  # ISO 3166-1 alpha-2, '' when unknown
    region: str  # ISO 3166-2 subdivision code (e.g. 'GB-ENG'), '' when unknown


UNKNOWN = Place("", "")


def bundled_database() -> Path | None:
    """The open country database shipped by the python-geoacumen package, if installed."""
    spec = importlib.util.find_spec("geoacumen")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "db" / "Geoacumen-Country.mmdb"
    return path if path.is_file() else None


class GeoLookup:
    """Looks up places; `None` database means every address is unknown."""

    def __init__(self, database: Path | None) -> None:
        self.database = database
        self._reader: Any = None
        if database is not None:
            # MODE_MEMORY reads the file once: lookups then never touch the disk.
            self._reader = maxminddb.open_database(str(database), maxminddb.MODE_AUTO)
        self.lookup = functools.lru_cache(maxsize=16384)(self._lookup)

    def _lookup(self, ip: str) -> Place:
        if self._reader is None or not ip:
            return UNKNOWN
        try:
            record = self._reader.get(ip)
        except (ValueError, TypeError):
            return UNKNOWN
        if not isinstance(record, dict):
            return UNKNOWN
        country = record.get("country") or record.get("registered_country") or {}
        code = str(country.get("iso_code") or "") if isinstance(country, dict) else ""
        if not _COUNTRY_CODE.fullmatch(code):
            # Some databases answer private and loopback addresses with the text "None".
            return UNKNOWN
        region = ""
        subdivisions = record.get("subdivisions")
        if code and isinstance(subdivisions, list) and subdivisions:
            sub = subdivisions[0]
            if isinstance(sub, dict) and sub.get("iso_code"):
                region = f"{code}-{sub['iso_code']}"
        return Place(code, region)

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
