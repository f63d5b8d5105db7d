"""Frozen records for the agent's data: the part of `dataclasses` it uses, without `dataclasses`.

The standard module imports `inspect` (with `ast`, `dis`, `tokenize`): about 1 MB of an idle
agent's private memory on Debian 12's Python, paid in every instance for nothing an idle pass
does. The agent's records are all `@dataclass(frozen=True)` with plain or `field(default=...,
default_factory=..., repr=..., compare=...)` defaults, so this module makes exactly those, spelled
the same way: an `__init__` with the fields as parameters in order, `__repr__` (of the fields
shown), `__eq__` (same class, equal compared fields), `__hash__` (of the compared fields), and
assignment or deletion refused with `FrozenInstanceError`. Anything else it is asked
for (another option, an inherited record, a default before a required field) is refused when the
class is defined, never silently different.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Optional, Tuple

__all__ = ["dataclass", "field", "FrozenInstanceError"]

_MISSING: Any = object()


class FrozenInstanceError(AttributeError):
    """Assigning to (or deleting) a field of a frozen record."""


class _Field:
    __slots__ = ("default", "make", "repr", "compare")

    def __init__(self, default: Any, make: Any, repr: bool, compare: bool) -> None:
        self.default, self.make, self.repr, self.compare = default, make, repr, compare


def field(*, default: Any = _MISSING, default_factory: Any = _MISSING, repr: bool = True,  # noqa: A002
          compare: bool = True) -> Any:  # fmt: skip
    """A field with options: a default, or a default made anew for each record (a dict, a tuple);
    left out of repr() (a secret) or out of == and hash()."""
    if default is not _MISSING and default_factory is not _MISSING:
        raise ValueError("cannot specify both default and default_factory")
    return _Field(default, default_factory, repr, compare)


def _values(self: Any) -> Tuple[Any, ...]:
    return tuple(getattr(self, name) for name in self.__record_compared__)


def _eq(self: Any, other: Any) -> Any:
    if other.__class__ is self.__class__:
        return _values(self) == _values(other)
    return NotImplemented


def _hash(self: Any) -> int:
    return hash(_values(self))


def _repr(self: Any) -> str:
    shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__record_shown__)
    return f"{self.__class__.__qualname__}({shown})"


def _setattr(self: Any, name: str, value: Any) -> None:
    raise FrozenInstanceError(f"cannot assign to field {name!r}")


def _delattr(self: Any, name: str) -> None:
    raise FrozenInstanceError(f"cannot delete field {name!r}")


def _init(cls: type, names: Tuple[str, ...]) -> Callable[..., None]:
    """__init__ with the fields as its parameters, so a wrong call fails as it would on a dataclass."""
    scope: Dict[str, Any] = {"_MISSING": _MISSING, "_set": object.__setattr__}
    params, body = [], []
    for name in names:
        default = cls.__dict__.get(name, _MISSING)
        if default is _MISSING:
            if any("=" in param for param in params):
                raise TypeError(f"{cls.__name__}: non-default field {name!r} follows a default one")
            params.append(name)
            body.append(f"    _set(self, {name!r}, {name})")
        elif isinstance(default, _Field) and default.make is not _MISSING:
            scope[f"_make_{name}"] = default.make
            params.append(f"{name}=_MISSING")
            body.append(f"    _set(self, {name!r}, _make_{name}() if {name} is _MISSING else {name})")
            delattr(cls, name)  # as dataclasses does: no class attribute holds the factory
        elif isinstance(default, _Field) and default.default is _MISSING:
            if any("=" in param for param in params):
                raise TypeError(f"{cls.__name__}: non-default field {name!r} follows a default one")
            params.append(name)
            body.append(f"    _set(self, {name!r}, {name})")
            delattr(cls, name)
        else:
            if isinstance(default, _Field):
                default = default.default
                setattr(cls, name, default)  # as dataclasses does: the class attribute is the default
            scope[f"_default_{name}"] = default
            params.append(f"{name}=_default_{name}")
            body.append(f"    _set(self, {name!r}, {name})")
    source = f"def __init__(self, {', '.join(params)}):\n" + ("\n".join(body) or "    pass") + "\n"
    exec(source, scope)  # noqa: S102 - the source is built from the class's own field names
    init = scope["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    return init


_MADE = ("__init__", "__repr__", "__eq__", "__hash__", "__setattr__", "__delattr__")


def _make(cls: type) -> type:
    if any("__record_fields__" in vars(base) for base in cls.__mro__[1:]):
        raise TypeError(f"{cls.__name__}: a record cannot inherit from another record")
    own = [name for name in _MADE if name in cls.__dict__]
    if own:
        raise TypeError(f"{cls.__name__}: a record makes its own {', '.join(own)}")
    names = tuple(name for name, kind in cls.__dict__.get("__annotations__", {}).items()
                  if not str(kind).startswith(("ClassVar", "typing.ClassVar")))  # fmt: skip
    options = {name: cls.__dict__.get(name) for name in names}
    shown = tuple(n for n in names if not isinstance(options[n], _Field) or options[n].repr)
    compared = tuple(n for n in names if not isinstance(options[n], _Field) or options[n].compare)
    cls.__init__ = _init(cls, names)  # type: ignore[misc]
    cls.__record_fields__ = names  # type: ignore[attr-defined]
    cls.__record_shown__ = shown  # type: ignore[attr-defined]
    cls.__record_compared__ = compared  # type: ignore[attr-defined]
    cls.__repr__ = _repr  # type: ignore[assignment]
    cls.__eq__ = _eq  # type: ignore[assignment]
    cls.__hash__ = _hash  # type: ignore[assignment]
    cls.__setattr__ = _setattr  # type: ignore[assignment]
    cls.__delattr__ = _delattr  # type: ignore[assignment]
    cls.__match_args__ = names  # type: ignore[attr-defined]
    return cls


def dataclass(cls: Optional[type] = None, *, frozen: bool = False) -> Any:
    """`@dataclass(frozen=True)`, as the standard decorator makes it (only frozen records exist here)."""
    if not frozen:
        raise TypeError("sharedfs_agent.records makes frozen records only: use @dataclass(frozen=True)")
    return _make if cls is None else _make(cls)
