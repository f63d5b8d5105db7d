"""auth.allow values of the glusterfs driver: whole CIDR blocks only, never wider than the set; nothing but addresses."""

from __future__ import annotations

import ipaddress
import random

import pytest

from sharedfs_api.drivers.glusterfs import MAX_AUTH_ALLOW, NOBODY, auth_allow


def expand(value: str) -> set:
    return {str(ip) for block in value.split(",") for ip in ipaddress.ip_network(block)}


def test_full_blocks_are_aggregated_and_partial_ones_are_not():
    assert auth_allow([f"10.0.0.{n}" for n in range(4)]) == "10.0.0.0/30"
    assert auth_allow(["10.0.0.1", "10.0.0.2", "10.0.0.3"]) == "10.0.0.1,10.0.0.2/31"
    assert auth_allow([f"10.0.{n // 256}.{n % 256}" for n in range(1024)]) == "10.0.0.0/22"
    assert auth_allow(["2001:db8::1", "2001:db8::"]) == "2001:db8::,2001:db8::1"  # IPv6 one by one
    assert auth_allow([]) == NOBODY


def test_the_value_grants_exactly_the_wanted_set():
    rng = random.Random(10)
    for _ in range(50):
        wanted = {f"10.{rng.randrange(2)}.{rng.randrange(4)}.{rng.randrange(256)}" for _ in range(rng.randrange(1, 900))}
        assert expand(auth_allow(wanted)) == wanted


@pytest.mark.parametrize("address", ["10.0.0.1,*", "*", "10.0.0.0/8", "fe80::1%x", "010.0.0.1", "2001:DB8::1",
                                     "10.0.0.1 ", "0.0.0.0", "127.0.0.1"])  # fmt: skip
def test_anything_but_a_canonical_unicast_address_is_refused(address):
    with pytest.raises(ValueError):
        auth_allow(["10.0.0.9", address])


def test_170_instances_with_16_addresses_each_fit_when_allocated_from_a_subnet():
    subnet = {f"10.200.{n // 256}.{n % 256}" for n in range(170 * 16)}
    assert auth_allow(subnet) == "10.200.0.0/21,10.200.8.0/23,10.200.10.0/25,10.200.10.128/27"
    # Scattered, no two in one block: far over what glusterd survives; the driver refuses it.
    scattered = {f"10.{200 + n // 250}.{n % 250}.{199 + (n % 2) * 20}" for n in range(170 * 16)}
    assert len(auth_allow(scattered)) > MAX_AUTH_ALLOW
