"""Wire dicts ⇄ driver dataclasses, validated so a bad order becomes a clear error reply.

`spec_from_dict` raises ValueError naming the offending field; the Peer turns that into an
`invalid_params` error reply. Unknown keys are ignored (a newer controller may send more).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from functools import cache
from typing import Any, TypeVar

from mininova.virt.driver import FlavorSpec, GuestInfo, HostResources, ImageSpec, InstanceSpec

T = TypeVar("T")


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _check(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _check(value, option, where)
            except ValueError as exc:
                errors.append(str(exc))
        raise ValueError(errors[0] if errors else f"{where}: invalid value")
    if dataclasses.is_dataclass(tp):
        return build(tp, value, where)
    if origin is dict:
        key_tp, val_tp = typing.get_args(tp) or (Any, Any)
        if not isinstance(value, dict):
            raise ValueError(f"{where}: expected an object, got {type(value).__name__}")
        return {
            _check(k, key_tp, f"{where} key"): _check(v, val_tp, f"{where}[{k!r}]")
            for k, v in value.items()
        }
    if origin is list:
        (item_tp,) = typing.get_args(tp) or (Any,)
        if not isinstance(value, list):
            raise ValueError(f"{where}: expected a list, got {type(value).__name__}")
        return [_check(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value)]
    if tp is Any:
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{where}: expected a boolean, got {type(value).__name__}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{where}: expected an integer, got {type(value).__name__}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ValueError(f"{where}: expected a string, got {type(value).__name__}")
        return value
    if isinstance(tp, type):
        if not isinstance(value, tp):
            raise ValueError(f"{where}: expected {tp.__name__}, got {type(value).__name__}")
        return value
    return value


def build(cls: type[T], data: Any, where: str) -> T:
    """Build dataclass `cls` from a JSON object, checking every field's type."""
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected an object, got {type(data).__name__}")
    hints = _hints(cls)
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.name not in data:
            required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            if required:
                raise ValueError(f"{where}: missing field {f.name!r}")
            continue
        kwargs[f.name] = _check(data[f.name], hints[f.name], f"{where}.{f.name}")
    return cls(**kwargs)


def spec_from_dict(data: Any) -> InstanceSpec:
    """The InstanceSpec of a `spawn` order; ValueError with the field path when malformed."""
    spec = build(InstanceSpec, data, "instance")
    if not spec.uuid:
        raise ValueError("instance.uuid: must not be empty")
    return spec


def flavor_from_dict(data: Any) -> FlavorSpec:
    return build(FlavorSpec, data, "flavor")


def image_from_dict(data: Any) -> ImageSpec:
    return build(ImageSpec, data, "image")


def guest_from_dict(data: Any) -> GuestInfo:
    return build(GuestInfo, data, "guest")


def to_dict(obj: Any) -> dict[str, Any]:
    """A dataclass (GuestInfo, HostResources, InstanceSpec...) as a JSON-ready dict."""
    out = dataclasses.asdict(obj)
    for key, value in out.items():
        if hasattr(value, "__fspath__"):
            out[key] = str(value)
    return out


def guest_to_dict(info: GuestInfo) -> dict[str, Any]:
    return to_dict(info)


def resources_to_dict(res: HostResources) -> dict[str, Any]:
    return to_dict(res)
