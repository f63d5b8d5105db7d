"""The server's backends: named, configured drivers (from --backend, --config or --driver), chosen per filesystem."""

from __future__ import annotations

import configparser
import re
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Mapping, Optional, Tuple

from .drivers import DRIVERS, Driver, make_driver
from .errors import BadRequest

__all__ = ["BackendConfig", "Backends", "STATIC", "parse_backend", "parse_options", "read_config",
           "shorthand"]

STATIC = "static"  # always there, for exports that exist already; never configured
# A backend's name is stored in each filesystem's row (filesystems.driver, 32 characters).
BACKEND_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
SECTION = "backend "


@dataclass(frozen=True)
class BackendConfig:
    """One backend as configured: its name, the driver that runs it and that driver's options."""

    name: str
    driver: str
    options: Mapping[str, str] = field(default_factory=dict)


def parse_options(pairs: Iterable[str], where: str) -> Dict[str, str]:
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"{where}: option {pair!r}: expected KEY=VALUE")
        options[key] = value
    return options


def parse_backend(text: str) -> BackendConfig:
    """`NAME=DRIVER[,KEY=VALUE...]`, the form of --backend (a value with a comma needs --config)."""
    head, *rest = text.split(",")
    name, sep, driver = head.partition("=")
    if not sep:
        raise ValueError(f"--backend {text!r}: expected NAME=DRIVER[,KEY=VALUE...]")
    return BackendConfig(name, driver, parse_options(rest, f"--backend {name}"))


def read_config(path: str) -> List[BackendConfig]:
    """The `[backend NAME]` sections of an INI file, in file order; `driver = DRIVER`, the rest options."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # option names are the driver's, case and all
    try:
        with open(path, encoding="utf-8") as f:
            parser.read_file(f)
    except (OSError, configparser.Error) as e:
        raise ValueError(f"--config {path}: {e}") from None
    out = []
    for section in parser.sections():
        if not section.startswith(SECTION):
            raise ValueError(f"--config {path}: section [{section}] is not [backend NAME]")
        options = dict(parser[section])
        name = section[len(SECTION):].strip()
        if "driver" not in options:
            raise ValueError(f"--config {path}: [{section}] has no driver = NAME")
        out.append(BackendConfig(name, options.pop("driver"), options))
    return out


def shorthand(driver: str, options: Mapping[str, str]) -> List[BackendConfig]:
    """`--driver DRIVER --driver-opt K=V`: one backend named after its driver (`static`, built in: none)."""
    return [] if driver == STATIC else [BackendConfig(driver, driver, dict(options))]


class Backends:
    """Drivers by backend name: `static` plus the configured ones. A new filesystem with an export
    goes to `static`; one without is made by the backend of its fs_type, or by the first backend
    configured when it names no type. Each fs_type has one backend, so the choice is never a guess."""

    def __init__(self, configs: Iterable[BackendConfig] = ()) -> None:
        self.drivers: Dict[str, Driver] = {STATIC: make_driver(STATIC, {})}
        self.by_type: Dict[str, str] = {}
        self.default: Optional[str] = None
        for config in configs:
            self._add(config)

    def _add(self, config: BackendConfig) -> None:
        if not BACKEND_NAME.fullmatch(config.name):
            raise ValueError(f"backend name {config.name!r} must match {BACKEND_NAME.pattern}")
        if config.name == STATIC or config.driver == STATIC:
            raise ValueError(f"backend {config.name!r}: the static driver is built in; configure only drivers "
                             f"that make filesystems ({', '.join(sorted(set(DRIVERS) - {STATIC}))})")  # fmt: skip
        if config.name in self.drivers:
            raise ValueError(f"backend {config.name!r} is configured twice")
        driver = make_driver(config.driver, config.options)
        other = self.by_type.get(driver.fs_type)
        if other is not None:
            raise ValueError(f"backends {other!r} and {config.name!r} both make {driver.fs_type} filesystems; "
                             "an fs_entry chooses its backend by fs_type, so keep one")  # fmt: skip
        self.drivers[config.name] = driver
        self.by_type[driver.fs_type] = config.name
        self.default = self.default or config.name

    def setup(self, context: Mapping[str, str]) -> None:
        """Each driver's do_setup: a backend that cannot be reached stops the start (DriverError)."""
        for driver in self.drivers.values():
            driver.do_setup(context)

    def get(self, name: str) -> Optional[Driver]:
        """The driver of a filesystem's backend, None when this process no longer configures it."""
        return self.drivers.get(name)

    def for_new(self, fs_type: Optional[str], export: Optional[str]) -> Tuple[str, Driver]:
        """The backend that makes a new filesystem, or BadRequest saying why none can."""
        if export is not None:
            return STATIC, self.drivers[STATIC]
        if self.default is None:
            raise BadRequest(
                "fs_entry.export is required: this server creates no filesystems itself "
                "(it has no backend but static; see serve --backend)"
            )
        name = self.by_type.get(fs_type) if fs_type else self.default
        if name is None:
            raise BadRequest(f"fs_entry.fs_type {fs_type!r}: this server's backends make "
                             f"{', '.join(sorted(self.by_type))}")  # fmt: skip
        return name, self.drivers[name]
