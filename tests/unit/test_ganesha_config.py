"""The nfs driver's ganesha EXPORT blocks: exactly the wanted clients, nothing that could break out of its place."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sharedfs_api.drivers import DRIVERS
from sharedfs_api.drivers.base import FsSpec
from sharedfs_api.drivers.ganesha import GaneshaDriver, _export_id, check_path, render_export
from sharedfs_api.errors import DriverError


def test_nobody_is_access_type_none_and_no_client_block():
    text = render_export(101, "/srv/nfs/home", "/home", set())
    assert "Access_Type = None;" in text and "CLIENT" not in text
    assert "Export_Id = 101;" in text and "Path = /srv/nfs/home;" in text and "Pseudo = /home;" in text
    assert "Protocols = 4;" in text and "Squash = Root_Squash;" in text
    assert "Anonymous_Uid = 65534;" in text and "Anonymous_Gid = 65534;" in text
    assert _export_id(text) == 101
    assert text.count("{") == text.count("}") == 2


def test_the_wanted_set_is_one_client_block_sorted_rw_or_ro():
    text = render_export(102, "/srv/nfs/a", "/a", {"10.0.0.9", "10.0.0.10", "fd00::5"})
    assert text.count("CLIENT {") == 1 and "        Access_Type = RW;" in text
    clients = next(line for line in text.splitlines() if "Clients" in line)
    assert sorted(clients.split("=", 1)[1].strip(" ;").split(", ")) == ["10.0.0.10", "10.0.0.9", "fd00::5"]
    read_only = render_export(102, "/srv/nfs/a", "/a", {"10.0.0.9"}, squash="no_root_squash", read_only=True)
    assert "        Access_Type = RO;" in read_only and "Squash = No_Root_Squash;" in read_only


@pytest.mark.parametrize("address", ["10.0.0.1;", "10.0.0.1 }", "*", "10.0.0.0/24", "host.example", "10.0.0.1\n",
                                     '"10.0.0.1"', "127.0.0.1", "010.0.0.1", "fe80::1%eth0", ""])  # fmt: skip
def test_anything_but_a_canonical_address_is_refused(address):
    with pytest.raises(ValueError, match="address"):
        render_export(101, "/srv/nfs/a", "/a", {"10.0.0.2", address})


@pytest.mark.parametrize("path", ["relative", "/a;b", "/a b", "/a}", '/a"', "/a\nb", "/a/../b", "/a//b", "/a#b", ""])
def test_paths_that_are_not_plain_are_refused(path):
    with pytest.raises(ValueError, match="path"):
        check_path(path, "export path")
    with pytest.raises(ValueError):
        render_export(101, path, "/a", set())


@given(st.text(min_size=1, max_size=30))
def test_any_path_accepted_is_one_config_token(path):
    try:
        check_path(path, "p")
    except ValueError:
        return
    assert not set(path) & set(" \t\n;{}\"#'=,")


def test_export_ids_and_squash_are_bounded():
    for bad in (0, 100, 65536):
        with pytest.raises(ValueError, match="export id"):
            render_export(bad, "/srv/a", "/a", set())
    with pytest.raises(ValueError, match="squash"):
        render_export(101, "/srv/a", "/a", set(), squash="none; }")


def test_registered_and_options_checked_before_anything_runs():
    assert DRIVERS["nfs"] is GaneshaDriver and GaneshaDriver.fs_type == "nfs"
    for options, message in (({}, "export_root"), ({"export_root": "/srv/x;y"}, "export_root"),
                             ({"export_root": "/srv/x", "export_dir": "etc"}, "export_dir"),
                             ({"export_root": "/srv/x", "export_host": "a b"}, "export_host"),
                             ({"export_root": "/srv/x", "squash": "no"}, "squash")):  # fmt: skip
        with pytest.raises(DriverError, match=message):
            GaneshaDriver(options).do_setup({})


def test_a_name_that_is_not_an_fs_name_never_reaches_a_path(tmp_path):
    driver = GaneshaDriver({})
    driver.export_root, driver.export_dir = str(tmp_path), str(tmp_path)
    with pytest.raises(DriverError, match="filesystem name"):
        driver.create(FsSpec("../etc", "p", 1))
