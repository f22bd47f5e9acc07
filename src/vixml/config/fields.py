"""The machinery of vixml's configuration: typed frozen sections, checking, coercion, error gathering."""

from __future__ import annotations

import difflib
import functools
import operator
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import field, fields
from typing import Any, ClassVar, Literal, TypeVar, Union

from vixml.devices import Precision
from vixml.errors import ConfigError

__all__ = [
    "InvalidConfigError",
    "Precision",
    "PROMPT_PLACEHOLDERS",
    "Kind",
    "PoolingMode",
    "ImageSides",
    "ImagePositions",
    "ImagelessCaption",
    "FreeVectorInit",
    "LpnInputs",
    "UnseenLabels",
    "LossName",
    "HingeTie",
    "PositiveSampling",
]

# Every mode vocabulary, defined once: the config validates against these and the components that consume a
# mode annotate with the same name, so the two cannot drift apart.
Kind = Literal["auto", "encoder", "decoder"]
PoolingMode = Literal["mean", "cls", "last"]
ImageSides = Literal["both", "query", "label"]
ImagePositions = Literal["fixed", "mask"]
ImagelessCaption = Literal["keep", "drop"]
FreeVectorInit = Literal["xavier", "cluster_mean"]
LpnInputs = Literal["raw", "normalized"]
UnseenLabels = Literal["prototype", "text"]
LossName = Literal["triplet", "infonce"]
HingeTie = Literal["split", "zero"]
PositiveSampling = Literal["uniform", "inverse_propensity"]

PROMPT_PLACEHOLDERS = ("{text}", "{images}", "{eos}")
_S = TypeVar("_S", bound="_Section")
_BOUNDS = {"gt": (operator.gt, ">"), "ge": (operator.ge, ">="), "lt": (operator.lt, "<"), "le": (operator.le, "<=")}


def _f(default: Any, help: str, **bounds: float) -> Any:
    """A field with its help text and numeric bounds (``gt``, ``ge``, ``lt``, ``le``; checked when not None)."""
    meta = {"help": help, "bounds": bounds}
    if isinstance(default, type):
        return field(default_factory=default, metadata=meta)
    return field(default=default, metadata=meta)


class InvalidConfigError(ConfigError):
    """The ConfigError raised for bad keys and values; ``problems`` holds every ``(dotted key, message)`` pair.

    Catch :class:`~vixml.errors.ConfigError`; the pairs let a section prefix its children's keys and let a
    caller list the problems one by one.
    """

    def __init__(self, problems: list[tuple[str, str]], prefix: str = "", source: str | None = None):
        self.problems = problems
        where = f" in {source}" if source else ""
        shown = "\n".join(f"  - {_join(prefix, key) or '<root>'}: {msg}" for key, msg in problems)
        super().__init__(f"invalid configuration{where} ({len(problems)} problem(s)):\n{shown}")
        self._init_args = (problems, prefix, source)

    def __reduce__(self) -> tuple[Any, ...]:  # picklable across processes (DDP workers, data loaders)
        return (type(self), self._init_args)


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix and key else prefix or key


class _Section:
    """Base of every config section: validates and normalises the fields after ``__init__``."""

    _key: ClassVar[str] = ""  # the section's dotted path inside RunConfig, used in error messages

    def __post_init__(self) -> None:
        problems: list[tuple[str, str]] = []
        hints = _hints(type(self))
        for f in fields(self):  # type: ignore[arg-type]
            try:
                value = _coerce(getattr(self, f.name), hints[f.name], f.name)
            except InvalidConfigError as exc:
                problems += exc.problems
                continue
            object.__setattr__(self, f.name, value)
            for op_name, bound in f.metadata.get("bounds", {}).items():
                op, sign = _BOUNDS[op_name]
                if value is not None and not isinstance(value, str) and not op(value, bound):
                    problems.append((f.name, f"must be {sign} {bound}, got {value!r}"))
        if not problems:
            problems += self._check()
        if problems:
            raise InvalidConfigError(problems, self._key)

    def _check(self) -> list[tuple[str, str]]:
        """Cross-field rules, run once every field has the right type; returns (key, message) pairs."""
        return []

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dicts and lists (YAML/JSON ready); ``from_dict(to_dict())`` gives an equal config."""
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)}  # type: ignore[arg-type]

    @classmethod
    def from_dict(cls: type[_S], data: Mapping[str, Any] | None) -> _S:
        """Build from nested mappings (as read from YAML); missing keys take their defaults.

        Raises:
            ConfigError: listing every unknown key (with the valid keys and a close match) and every bad value.
        """
        try:
            return _build(cls, {} if data is None else data)
        except InvalidConfigError as exc:
            raise InvalidConfigError(exc.problems, cls._key) from None


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _section_type(tp: Any) -> type | None:
    """The section class inside ``tp`` (``X`` or ``X | None``), or None when ``tp`` is not a section."""
    for arg in (tp, *typing.get_args(tp)):
        if isinstance(arg, type) and issubclass(arg, _Section):
            return arg
    return None


def _is_optional(tp: Any) -> bool:
    return typing.get_origin(tp) in (Union, types.UnionType) and type(None) in typing.get_args(tp)


def _type_name(tp: Any) -> str:
    if typing.get_origin(tp) in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if typing.get_origin(tp) is Literal:
        return "one of " + ", ".join(repr(c) for c in typing.get_args(tp))
    if typing.get_origin(tp) is tuple:
        return f"list of {_type_name(typing.get_args(tp)[0])}"
    return "null" if tp is type(None) else getattr(tp, "__name__", str(tp))


def _suggest(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against the annotation ``tp``; return it normalised (int -> float, list -> tuple, dict ->
    section). Raises InvalidConfigError with a message naming ``key``, the value and what was expected."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    bad = InvalidConfigError([(key, f"expected {_type_name(tp)}, got {value!r}")])
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        if len(options) > 1:  # e.g. ``float | Literal["auto"]``: the first option that accepts the value
            errors = []
            for option in options:
                try:
                    return _coerce(value, option, key)
                except InvalidConfigError as exc:
                    errors.append((option, exc))
            for option, exc in errors:  # a list is meant for the tuple option: its item-level message
                if isinstance(value, list | tuple) and typing.get_origin(option) is tuple:
                    raise exc
            raise bad
        (tp,) = options
        origin, args = typing.get_origin(tp), typing.get_args(tp)
    if value is None:
        raise bad
    if origin is Literal:
        if any(value == c and type(value) is type(c) for c in args):
            return value
        choices = ", ".join(repr(c) for c in args)
        raise InvalidConfigError([(key, f"{value!r} is not valid{_suggest(value, args)}; choose one of {choices}")])
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise bad
        problems, items = [], []
        for i, item in enumerate(value):
            try:
                items.append(_coerce(item, args[0], f"{key}[{i}]"))
            except InvalidConfigError as exc:
                problems += exc.problems
        if problems:
            raise InvalidConfigError(problems)
        return tuple(items)
    if isinstance(tp, type) and issubclass(tp, _Section):
        if isinstance(value, tp):
            return value
        try:
            return _build(tp, value)
        except InvalidConfigError as exc:
            raise InvalidConfigError([(_join(key, k), m) for k, m in exc.problems]) from None
    if tp is float and isinstance(value, str):  # PyYAML reads "1e-4" (no dot) as a string
        try:
            return float(value)
        except ValueError:
            raise bad from None
    if isinstance(value, bool) != (tp is bool):
        raise bad
    if tp is float and isinstance(value, int | float):
        return float(value)
    if not isinstance(value, tp):
        raise bad
    return value


def _build(cls: type, data: Any) -> Any:
    """Construct section ``cls`` from a mapping, reporting unknown keys together with bad values."""
    if not isinstance(data, Mapping):
        raise InvalidConfigError([("", f"expected a mapping of {cls.__name__} keys (or null), got {data!r}")])
    names = [f.name for f in fields(cls)]
    problems = [(str(k), _unknown(k, names, cls)) for k in data if k not in names]
    try:
        obj = cls(**{k: v for k, v in data.items() if k in names})
    except InvalidConfigError as exc:
        problems += exc.problems
    if problems:
        raise InvalidConfigError(problems)
    return obj


def _unknown(key: Any, names: list[str], cls: type) -> str:
    section = f"section {cls._key!r}" if cls._key else "the top level"  # type: ignore[attr-defined]
    return f"unknown key{_suggest(key, names)}; valid keys of {section}: {', '.join(names)}"


def _plain(value: Any) -> Any:
    if isinstance(value, _Section):
        return value.to_dict()
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value
