"""Location: Go's JSON (omitempty fields), lenient decoding, the constraint matching rule."""

from __future__ import annotations

import pytest

from dms.errors import InvalidInput
from dms.resources import Location

ADDIS = Location("Africa", "ET", "Addis Ababa", 24757, "Ethio Telecom")


def test_json_keys_in_go_order_and_unset_fields_left_out() -> None:
    assert ADDIS.to_json() == (
        b'{"continent":"Africa","country":"ET","city":"Addis Ababa","asn":24757,'
        b'"isp":"Ethio Telecom"}'
    )
    assert Location().to_json() == b"{}"
    assert Location(continent="Europe", asn=3320).to_json() == b'{"continent":"Europe","asn":3320}'


def test_decoding_is_lenient_like_gos() -> None:
    assert Location.from_json({"Continent": "Africa", "COUNTRY": "ET", "extra": 1}) == Location(
        "Africa", "ET"
    )
    assert Location.from_json(None) == Location()
    assert Location.from_json({"asn": 24757.0}).asn == 24757
    assert Location.from_json(ADDIS.__gojson__()) == ADDIS
    for bad in ({"asn": -1}, {"asn": "1"}, {"city": 3}, []):
        with pytest.raises(InvalidInput):
            Location.from_json(bad)


def test_match_requires_the_continent_and_every_field_the_constraint_sets() -> None:
    assert Location("Africa").matches(ADDIS)
    assert Location("Africa", "ET").matches(ADDIS)
    assert Location("Africa", "ET", "Addis Ababa", 24757, "Ethio Telecom").matches(ADDIS)
    assert Location("Africa", asn=24757).matches(ADDIS)
    assert not Location("Europe").matches(ADDIS)
    assert not Location("Africa", "KE").matches(ADDIS)
    assert not Location("Africa", city="Nairobi").matches(ADDIS)
    assert not Location("Africa", asn=1).matches(ADDIS)
    assert not Location("Africa", isp="Safaricom").matches(ADDIS)
    # The continent is always compared, even when empty (Go's Equal does the same).
    assert not Location(country="ET").matches(ADDIS)
    assert Location().matches(Location())


def test_accept_wins_over_reject() -> None:
    assert ADDIS.satisfies()
    assert ADDIS.satisfies(accept=[Location("Europe"), Location("Africa", "ET")])
    assert not ADDIS.satisfies(accept=[Location("Europe")])
    assert ADDIS.satisfies(accept=[Location("Africa")], reject=[Location("Africa")])
    assert not ADDIS.satisfies(reject=[Location("Africa", isp="Ethio Telecom")])
    assert ADDIS.satisfies(reject=[Location("Africa", "KE")])
    assert Location().is_empty and not ADDIS.is_empty
