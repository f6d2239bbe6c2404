"""Typed settings: frozen dataclasses whose fields carry their documentation and their valid range.

Every config group has one :class:`Settings` subclass; its field defaults are the group's only
defaults (the YAML files under ``conf/`` hold presets on top of them). A field is declared with
:func:`setting`, e.g. ``kr: int = setting(128, "CountSketch width of r", gt=0)``; constructing the
dataclass coerces and checks every field against its type hint and its metadata (``choices``,
``ge``/``gt``/``le``/``lt``) and then calls :meth:`Settings.validate` for rules across fields. Errors are
:class:`~rise_exp.core.errors.ConfigError` naming the setting as the user writes it (``method.kr``).

A field called ``name`` (``model.name``, ``task.name``, ``method.name``, ``stage.name``) names directories
(run dirs, cache entries), so it must be a safe name (:data:`NAME_PATTERN`): ``model.name=../../x`` is
a one-line error before any work.

Supported field types: ``bool``, ``int``, ``float``, ``str``, ``X | None``, ``tuple[X, ...]`` (lists are
converted), ``dict[str, Any]``, ``Any`` and nested :class:`Settings` subclasses: the subset Hydra's
structured configs understand, so the same classes serve as ConfigStore schemas.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, TypeVar

from rise_exp.core.errors import ConfigError

S = TypeVar("S", bound="Settings")
_NUMBER_RULES = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}
#: How a row's token losses become its loss (the ``loss_reduction`` settings; :mod:`rise_exp.training.losses`).
LOSS_REDUCTIONS = ("mean", "sum")
#: A name that is safe as one path component: no separators, no leading dot, nothing to escape.
NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._+-]*"


def check_name(key: str, value: Any) -> None:
    """Raise a ConfigError unless ``value`` is a safe name (:data:`NAME_PATTERN`)."""
    if not isinstance(value, str) or not re.fullmatch(NAME_PATTERN, value):
        raise ConfigError(
            f"{key} {value!r} is not a safe name: it names directories, so use letters, digits and . _ + - "
            "(starting with a letter or digit)"
        )


def setting(
    default: Any = dataclasses.MISSING,
    doc: str = "",
    *,
    factory: Any = None,
    choices: Sequence[Any] | None = None,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
) -> Any:
    """A dataclass field with its documentation and checks.

    Args:
        default: Default value (use ``factory`` for mutable ones).
        doc: One sentence on what the setting does.
        factory: Zero-argument callable producing the default.
        choices: Allowed values.
        ge, gt, le, lt: Bounds for numbers (``None`` values skip them).
    """
    meta = {
        "doc": doc,
        "choices": tuple(choices) if choices is not None else None,
        "ge": ge,
        "gt": gt,
        "le": le,
        "lt": lt,
    }
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def plain(value: Any) -> Any:
    """OmegaConf containers -> plain Python containers (resolved); anything else unchanged."""
    if type(value).__module__.startswith("omegaconf"):
        from omegaconf import OmegaConf

        return OmegaConf.to_container(value, resolve=True)
    return value


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _is_settings(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, Settings)


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """``value`` converted to type ``tp`` or a ConfigError naming ``key``."""
    value = plain(value)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        errors = []
        for a in inner:
            try:
                return _coerce(value, a, key)
            except ConfigError as e:
                errors.append(e)
        raise errors[0]
    if _is_settings(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key} must be a mapping of settings, got {value!r}")
        return tp.from_mapping(value)
    if origin is tuple or origin is list or tp in (tuple, list):
        if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
            raise ConfigError(f"{key} must be a list, got {value!r}")
        if args and len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], f"{key}[{i}]") for i, v in enumerate(value))
        if args and origin is tuple:
            if len(value) != len(args):
                raise ConfigError(f"{key} must have {len(args)} entries, got {value!r}")
            return tuple(_coerce(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
        return tuple(_coerce(v, args[0], f"{key}[{i}]") if args else v for i, v in enumerate(value))
    if origin is dict or tp is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key} must be a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key} must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key} must be an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key} must be a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key} must be a string, got {value!r}")
        return value
    raise TypeError(f"setting {key}: unsupported type {_type_name(tp)}")  # a bug in a Settings class


def _check_meta(value: Any, meta: Mapping[str, Any], key: str) -> None:
    if value is None:
        return
    choices = meta.get("choices")
    if choices is not None and value not in choices:
        raise ConfigError(f"unknown {key} {value!r}; allowed values: {', '.join(map(str, choices))}")
    for rule, symbol in _NUMBER_RULES.items():
        bound = meta.get(rule)
        if bound is None:
            continue
        ok = {"ge": value >= bound, "gt": value > bound, "le": value <= bound, "lt": value < bound}[rule]
        if not ok:
            raise ConfigError(f"{key} must be {symbol} {bound}, got {value!r}")


@dataclasses.dataclass(frozen=True)
class Settings:
    """Base class of every typed config (frozen dataclass, checked on construction).

    Subclasses set ``GROUP``, the dotted prefix under which the user writes their settings
    (``"method"``, ``"method.index"``, ``"stage.pack"``), and may override :meth:`validate`.
    """

    GROUP: ClassVar[str] = ""

    def __post_init__(self) -> None:
        hints = _hints(type(self))
        for f in dataclasses.fields(self):
            key = self.key(f.name)
            value = _coerce(getattr(self, f.name), hints[f.name], key)
            _check_meta(value, f.metadata, key)
            if f.name == "name" and hints[f.name] is str:
                check_name(key, value)
            object.__setattr__(self, f.name, value)
        self.validate()

    @classmethod
    def key(cls, name: str) -> str:
        """The user-facing name of field ``name`` (``method.kr``)."""
        return f"{cls.GROUP}.{name}" if cls.GROUP else name

    def validate(self) -> None:
        """Rules across fields; raise :class:`ConfigError` naming the setting. Default: none."""

    def fail(self, name: str, message: str) -> ConfigError:
        """A ConfigError ``"<group>.<name> <message>"``."""
        return ConfigError(f"{self.key(name)} {message}")

    def require_items(self, name: str, hint: str, distinct: bool = False) -> None:
        """Raise a ConfigError unless list setting ``name`` has an entry (``hint`` says what to give) and, when
        ``distinct``, none twice."""
        items = getattr(self, name)
        if not items:
            raise self.fail(name, f"is empty; {hint}")
        if distinct and (dup := sorted({x for x in items if items.count(x) > 1})):
            raise self.fail(name, f"lists {dup} more than once")

    @classmethod
    def field_names(cls) -> list[str]:
        """Names of every setting, in declaration order."""
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_mapping(cls: type[S], mapping: Mapping[str, Any] | Any) -> S:
        """Build from a mapping (dict or OmegaConf node); unknown keys raise a ConfigError listing the allowed ones."""
        data = plain(mapping)
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise ConfigError(f"{cls.GROUP or cls.__name__} must be a mapping of settings, got {data!r}")
        names = cls.field_names()
        unknown = sorted(set(data) - set(names))
        if unknown:
            raise ConfigError(
                f"unknown setting(s) {', '.join(cls.key(k) for k in unknown)}; allowed: {', '.join(names)}"
            )
        return cls(**dict(data))

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (tuples become lists), e.g. for manifests and cache keys."""

        def conv(v: Any) -> Any:
            if isinstance(v, Settings):
                return v.to_dict()
            if isinstance(v, tuple):
                return [conv(x) for x in v]
            if isinstance(v, dict):
                return {k: conv(x) for k, x in v.items()}
            return v

        return {f.name: conv(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def replace(self: S, **changes: Any) -> S:
        """A copy with ``changes`` applied (checked like a new instance)."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def docs(cls) -> list[tuple[str, str, str]]:
        """``(key, default, doc)`` of every setting, nested settings expanded (for documentation)."""
        out = []
        hints = _hints(cls)
        for f in dataclasses.fields(cls):
            if _is_settings(hints[f.name]):
                out += hints[f.name].docs()
                continue
            default = (
                f.default
                if f.default is not dataclasses.MISSING
                else (f.default_factory() if f.default_factory is not dataclasses.MISSING else "(required)")
            )
            out.append((cls.key(f.name), repr(default), f.metadata.get("doc", "")))
        return out
