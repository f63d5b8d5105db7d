"""auth.allow values of the glusterfs driver: exactly the wanted addresses, nothing but addresses, bounded."""

from __future__ import annotations

import pytest

from sharedfs_api.drivers.glusterfs import MAX_AUTH_ALLOW, NOBODY, auth_allow


def test_the_value_is_exactly_the_wanted_set():
    wanted = {"10.0.0.3", "10.0.0.1", "10.0.0.2", "10.0.0.0", "2001:db8::1", "10.0.0.10"}
    assert auth_allow(wanted) == "10.0.0.0,10.0.0.1,10.0.0.2,10.0.0.3,10.0.0.10,2001:db8::1"  # no block, no widening
    assert auth_allow([]) == NOBODY


@pytest.mark.parametrize("address", ["10.0.0.1,*", "*", "10.0.0.0/8", "10.0.0.*", "fe80::1%x", "010.0.0.1",
                                     "2001:DB8::1", "10.0.0.1 ", "0.0.0.0", "127.0.0.1"])  # fmt: skip
def test_anything_but_a_canonical_unicast_address_is_refused(address):
    with pytest.raises(ValueError):
        auth_allow(["10.0.0.9", address])


def test_the_limit_holds_about_200_addresses():
    assert len(auth_allow({f"10.200.{n // 250}.{n % 250 + 1}" for n in range(200)})) <= MAX_AUTH_ALLOW
    assert len(auth_allow({f"10.200.{n // 250}.{n % 250 + 1}" for n in range(170 * 16)})) > MAX_AUTH_ALLOW
