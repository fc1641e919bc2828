"""City coordinates from GeoNames and the speed-of-light RTT bound (Go's constants)."""

from __future__ import annotations

import pytest

from dms.orchestrator import Area, locate, locate_area, rtt_lower_bound_ms
from dms.orchestrator._geo import LIGHT_SPEED_KM_S, area_rtt_lower_bound_ms, distance_km
from dms.resources import Location


def test_bound_uses_go_constants() -> None:
    assert LIGHT_SPEED_KM_S == 299_792.458
    # a quarter of the Earth's circumference (radius 6371 km) there and back
    quarter = 6371 * 3.141592653589793 / 2
    assert rtt_lower_bound_ms((0, 0), (0, 90)) == pytest.approx(quarter / LIGHT_SPEED_KM_S * 2000)
    assert rtt_lower_bound_ms((10, 10), (10, 10)) == 0


def test_london_new_york() -> None:
    london = locate(Location(country="GB", city="London"))
    nyc = locate(Location(country="US", city="New York City"))
    assert london is not None and nyc is not None
    assert distance_km(london, nyc) == pytest.approx(5570, rel=0.01)
    assert rtt_lower_bound_ms(london, nyc) == pytest.approx(37.2, abs=0.3)


def test_city_by_code_name_or_alternate_name() -> None:
    munich = locate(Location(country="DE", city="Munich"))
    assert munich == pytest.approx((48.14, 11.58), abs=0.01)
    assert locate(Location(country="Germany", city="München")) == munich
    assert locate(Location(country="de", city="munich")) == munich


def test_country_only_is_the_capital_with_its_span() -> None:
    area = locate_area(Location(country="ET"))
    assert area is not None
    assert (area.lat, area.lon) == pytest.approx((9.02, 38.75), abs=0.01)  # Addis Ababa
    assert 300 < area.radius_km < 2000
    assert locate(Location(country="ET", city="No Such Town")) == (area.lat, area.lon)


def test_unknown_is_none() -> None:
    assert locate(Location()) is None
    assert locate(Location(continent="Europe")) is None
    assert locate(Location(country="ZZ", city="Atlantis")) is None


def test_area_bound_subtracts_radii_and_never_goes_negative() -> None:
    a, b = Area(0, 0, 0), Area(0, 90, 0)
    exact = area_rtt_lower_bound_ms(a, b)
    assert area_rtt_lower_bound_ms(Area(0, 0, 1000), b) < exact
    assert area_rtt_lower_bound_ms(Area(0, 0, 20_000), b) == 0
