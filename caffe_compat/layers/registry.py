"""The layer registry: Caffe type string → layer class.

Each layer module registers its class with ``@register_layer("Type")``, like
Caffe's ``REGISTER_LAYER_CLASS``. Nothing else in the code base switches on
type names. Other sources of layer classes (``.caffeinit`` Python layers) plug
in through :func:`add_resolver`.
"""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING, Callable, TypeVar

from ..errors import UnknownLayerTypeError

if TYPE_CHECKING:
    from .base import Layer

__all__ = ["register_layer", "get_layer_class", "layer_type_list", "add_resolver", "registry"]

_REGISTRY: dict[str, type["Layer"]] = {}
_RESOLVERS: list[Callable[[str], "type[Layer] | None"]] = []

L = TypeVar("L", bound="type[Layer]")


def register_layer(type_name: str, *aliases: str) -> Callable[[L], L]:
    """Class decorator registering a layer class under Caffe's type string."""

    def deco(cls: L) -> L:
        for name in (type_name, *aliases):
            other = _REGISTRY.get(name)
            if other is not None and other is not cls:
                raise RuntimeError(
                    f"layer type {name!r} registered twice: {other.__module__}.{other.__name__} "
                    f"and {cls.__module__}.{cls.__name__}"
                )
            _REGISTRY[name] = cls
        cls.type = type_name  # type: ignore[attr-defined]
        return cls

    return deco


def add_resolver(fn: Callable[[str], "type[Layer] | None"]) -> None:
    """Consult ``fn(type_name)`` for types the registry does not know."""
    if fn not in _RESOLVERS:
        _RESOLVERS.append(fn)


def registry() -> dict[str, type["Layer"]]:
    """A copy of the type → class table."""
    _ensure_loaded()
    return dict(_REGISTRY)


def layer_type_list() -> list[str]:
    """Registered type names, sorted (pycaffe's ``caffe.layer_type_list()``)."""
    _ensure_loaded()
    return sorted(_REGISTRY)


def get_layer_class(type_name: str, layer_name: str = "") -> type["Layer"]:
    _ensure_loaded()
    cls = _REGISTRY.get(type_name)
    if cls is not None:
        return cls
    for resolve in _RESOLVERS:
        found = resolve(type_name)
        if found is not None:
            return found
    where = f'layer "{layer_name}": ' if layer_name else ""
    close = difflib.get_close_matches(type_name, list(_REGISTRY), n=3)
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    raise UnknownLayerTypeError(
        f'{where}unknown layer type "{type_name}".{hint} Known types: {", ".join(sorted(_REGISTRY))}'
    )


def _ensure_loaded() -> None:
    # Importing the package imports every layer module (and so registers it).
    from .. import layers  # noqa: F401
