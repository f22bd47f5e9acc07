"""Config files and ``--set`` overrides: YAML load/save, dotted-key overrides, the annotated dump."""

from __future__ import annotations

import os
import textwrap
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any, Literal

import yaml

from vixml.atomic import atomic_open
from vixml.config.fields import (
    InvalidConfigError,
    _hints,
    _is_optional,
    _plain,
    _Section,
    _section_type,
    _type_name,
    _unknown,
)
from vixml.config.sections import RunConfig
from vixml.errors import ConfigError

__all__ = ["load_config", "save_config", "apply_overrides", "describe_config"]


def load_config(path: str | os.PathLike, overrides: Iterable[str] = ()) -> RunConfig:
    """Read a YAML config (an empty file = all defaults), then apply ``--set`` style ``overrides``.

    Raises:
        ConfigError: the file is missing or not YAML (with the line), or holds unknown keys or bad values.
    """
    path = Path(path)
    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise ConfigError(f"{path}: {path.stat().st_size:,} bytes; a config file is at most {MAX_CONFIG_BYTES:,}")
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not a text file (byte offset {exc.start} is not UTF-8): a config is a UTF-8 YAML file"
        ) from None
    try:
        data = _safe_yaml(text, path)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{line}: not valid YAML: {getattr(exc, 'problem', None) or exc}") from None
    try:
        cfg = RunConfig.from_dict(data)
    except InvalidConfigError as exc:
        raise InvalidConfigError(exc.problems, source=str(path)) from None
    overrides = list(overrides)
    return apply_overrides(cfg, overrides) if overrides else cfg


MAX_CONFIG_BYTES = 1 << 20  # a config is a few KiB; a larger file is not one


def _safe_yaml(text: str, path: Path) -> Any:
    """``yaml.safe_load`` refusing aliases (``*name``): a config needs none, and nested aliases expand
    exponentially (a "billion laughs" file) wherever the value is walked or printed."""
    if "\x00" in text:
        raise ConfigError(f"{path}: not a text file (NUL byte): a config is a UTF-8 YAML file")
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.AliasEvent):
            line = event.start_mark.line + 1
            raise ConfigError(f"{path}:{line}: YAML alias *{event.anchor}: aliases are not accepted in a config")
    return yaml.safe_load(text)


class _NoAliasDumper(yaml.SafeDumper):
    """Writes a shared value twice instead of as an alias, so that :func:`load_config` reads it back."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def save_config(cfg: RunConfig, path: str | os.PathLike) -> None:
    """Write ``cfg`` as YAML atomically; :func:`load_config` reads back an equal config."""
    text = yaml.dump(cfg.to_dict(), Dumper=_NoAliasDumper, sort_keys=False, allow_unicode=True, width=1000)
    with atomic_open(path) as fh:
        fh.write("# vixml run configuration (every key; `vixml config show` explains each)\n" + text)


def apply_overrides(cfg: RunConfig, overrides: Iterable[str]) -> RunConfig:
    """Return a copy of ``cfg`` with ``KEY=VALUE`` overrides applied in order (e.g. ``train.epochs=5``).

    Values are read as YAML (``null``, ``true``, ``1e-4``, ``[8, 16]``, ``{r: 64}``); string and mode fields
    take the text as written; a list field also takes ``8,16``. ``section=null`` switches an optional
    section off; a key inside a switched-off section (``model.lora.r=64``) switches it on with defaults
    first; a mapping value merges into the section.

    Raises:
        ConfigError: every malformed item, unknown key (with a close match) and invalid value.
    """
    data, problems = cfg.to_dict(), []
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            problems.append((item, "expected KEY=VALUE, e.g. train.epochs=5"))
            continue
        try:
            _set_path(data, key.split("."), raw)
        except InvalidConfigError as exc:
            problems += exc.problems
    if problems:
        raise InvalidConfigError(problems, source="--set overrides")
    try:
        return RunConfig.from_dict(data)
    except InvalidConfigError as exc:
        raise InvalidConfigError(exc.problems, source="--set overrides") from None


def _set_path(data: dict[str, Any], parts: list[str], raw: str) -> None:
    node, section = data, RunConfig
    for depth, part in enumerate(parts):
        key = ".".join(parts[: depth + 1])
        names = [f.name for f in fields(section)]
        if part not in names:
            tail = "." + ".".join(parts[depth:])
            elsewhere = [k for k in _all_keys(RunConfig) if k.endswith(tail)]
            hint = f" (the key exists as {' / '.join(elsewhere)})" if elsewhere else ""
            raise InvalidConfigError([(key, _unknown(part, names, section) + hint)])
        tp = _hints(section)[part]
        sub = _section_type(tp)
        if depth == len(parts) - 1:
            value = _parse_value(raw, tp, key)
            if sub is not None and isinstance(value, Mapping) and isinstance(node.get(part), Mapping):
                value = {**node[part], **value}
            node[part] = value
            return
        if sub is None:
            raise InvalidConfigError([(key, f"is a value ({_type_name(tp)}), not a section; set it as {key}=VALUE")])
        if not isinstance(node.get(part), dict):
            node[part] = {}  # a key inside a switched-off section switches it on with defaults
        node, section = node[part], sub


def _all_keys(cls: type, prefix: str = "") -> list[str]:
    """Every dotted key under section ``cls`` (sections and values), for "did you mean" hints."""
    keys = []
    for name, tp in _hints(cls).items():
        if name.startswith("_"):
            continue
        keys.append(prefix + name)
        sub = _section_type(tp)
        keys += _all_keys(sub, f"{prefix}{name}.") if sub is not None else []
    return keys


def _parse_value(raw: str, tp: Any, key: str) -> Any:
    text = raw.strip()
    if _is_optional(tp) and text in ("null", "~", "None"):
        return None
    union = typing.get_origin(tp) in (typing.Union, types.UnionType)
    options = [a for a in typing.get_args(tp) if a is not type(None)] if union else [tp]
    literals = [c for a in options if typing.get_origin(a) is Literal for c in typing.get_args(a)]
    if len(options) > 1 and text in literals:  # "auto" of ``int | Literal["auto"]``
        return text
    base = next((a for a in options if typing.get_origin(a) is tuple), options[0])
    if base is str or (typing.get_origin(base) is Literal and all(isinstance(c, str) for c in typing.get_args(base))):
        return text  # as written: "model.name_or_path=1e-3" stays a string, "on"/"off" stay modes
    try:
        if typing.get_origin(base) is tuple and not text.startswith("["):
            pieces = [p.strip() for p in text.split(",")] if text else []
            return pieces if typing.get_args(base)[0] is str else [yaml.safe_load(p) for p in pieces]
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidConfigError([(key, f"value {raw!r} is not valid YAML: {getattr(exc, 'problem', exc)}")]) from None


def describe_config(cfg: RunConfig | None = None) -> str:
    """YAML of every option of ``cfg`` (defaults when None) with its help as comments (``vixml config show``).

    Switched-off sections are shown as ``null`` followed by their keys and defaults, commented out. The text
    loads back (``yaml.safe_load``) into the same config.
    """
    lines = ["# vixml run configuration: every key with its value and meaning.", ""]
    _describe(cfg or RunConfig(), 0, lines, off_at=None)
    return "\n".join(lines).rstrip("\n") + "\n"


def _describe(obj: _Section, depth: int, lines: list[str], off_at: int | None) -> None:
    """Append ``obj``'s keys at ``depth``; inside a switched-off section (``off_at`` = its depth) as comments."""
    pad = "  " * depth if off_at is None else "  " * off_at + "# " + "  " * (depth - off_at)
    hints = _hints(type(obj))
    for f in fields(obj):  # type: ignore[arg-type]
        tp, value = hints[f.name], getattr(obj, f.name)
        help_text = f.metadata["help"]
        if typing.get_origin(tp) is Literal:
            help_text += f" [{_type_name(tp)}]"
        lines += [
            f"{pad}# {line}"
            for line in textwrap.wrap(help_text, width=100, break_on_hyphens=False, break_long_words=False)
        ]
        sub = _section_type(tp)
        if sub is None:
            lines.append(f"{pad}{f.name}: {_inline_yaml(_plain(value))}")
        elif value is None:
            lines.append(f"{pad}{f.name}: null")
            lines.append(f"{pad}# To switch it on, replace null by the keys below (or by {{}} for all defaults):")
            _describe(sub(), depth + 1, lines, off_at=depth if off_at is None else off_at)
        else:
            lines.append(f"{pad}{f.name}:")
            _describe(value, depth + 1, lines, off_at)
        if depth == 0:
            lines.append("")


def _inline_yaml(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, allow_unicode=True, width=10**6)
    return text.removesuffix("\n...\n").strip()
