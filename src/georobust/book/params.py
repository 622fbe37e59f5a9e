"""Chapter parameters: one file of profiles, validated before any work.

Every parameter of every chapter is declared once, in ``profiles.yml`` beside this module, with
its type, its allowed values and its value under each profile. :func:`resolve` turns a chapter
name, a profile and a dict of overrides into a validated :class:`Params`; anything wrong (an
unknown name, a wrong type, a value out of range) raises :class:`ParameterError`, whose message
names the parameter and says what is allowed. The runner calls it before starting a kernel and
each notebook calls it again in its first cell, so a chapter executed directly with papermill is
checked the same way.
"""

from __future__ import annotations

import difflib
import functools
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

import yaml

PROFILES_FILE = Path(__file__).with_name("profiles.yml")
_TYPES = ("int", "float", "str", "bool", "path", "list[int]", "list[float]")


class ParameterError(ValueError):
    """A chapter parameter, profile or chapter name that is not allowed."""


@functools.lru_cache(maxsize=1)
def load_profiles() -> dict:
    """The parsed ``profiles.yml`` (cached)."""
    with open(PROFILES_FILE, encoding="utf-8") as fh:
        spec = yaml.safe_load(fh)
    for chapter in spec["chapters"].values():
        for name, decl in {**spec["common"], **chapter["params"]}.items():
            if decl["type"] not in _TYPES:  # a mistake in profiles.yml itself
                raise ParameterError(f"profiles.yml: parameter {name!r} has unknown type {decl['type']!r}")
    return spec


def profiles() -> dict[str, str]:
    """Profile name -> description."""
    return dict(load_profiles()["profiles"])


def chapters() -> list[str]:
    """Chapter names, in the order of ``profiles.yml``."""
    return list(load_profiles()["chapters"])


def declarations(chapter: str) -> dict[str, dict]:
    """Every parameter the chapter takes (common ones first) -> its declaration."""
    spec = load_profiles()
    if chapter not in spec["chapters"]:
        raise ParameterError(
            f"unknown chapter {chapter!r}{_suggest(chapter, spec['chapters'])}; "
            f"chapters: {', '.join(spec['chapters'])}"
        )
    return {**spec["common"], **spec["chapters"][chapter]["params"]}


@dataclass(frozen=True)
class Params:
    """Validated parameters of one chapter under one profile (attribute access, read-only)."""

    chapter: str
    profile: str
    values: Mapping[str, Any]
    overridden: tuple[str, ...] = ()

    def __getattr__(self, name: str) -> Any:
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(f"chapter {self.chapter!r} has no parameter {name!r}") from None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.values)


def resolve(chapter: str, profile: str = "quick", overrides: Mapping[str, Any] | None = None) -> Params:
    """Validated parameters of ``chapter`` under ``profile`` with ``overrides`` applied.

    Raises :class:`ParameterError` naming the chapter, profile or parameter at fault.
    """
    decls = declarations(chapter)
    known_profiles = profiles()
    if profile not in known_profiles:
        raise ParameterError(
            f"unknown profile {profile!r}{_suggest(profile, known_profiles)}; profiles: {', '.join(known_profiles)}"
        )
    overrides = dict(overrides or {})
    if not all(isinstance(k, str) for k in overrides):
        raise ParameterError("parameter names must be strings")
    unknown = [k for k in overrides if k not in decls]
    if unknown:
        name = unknown[0]
        raise ParameterError(
            f"unknown parameter {name!r} for chapter {chapter!r}{_suggest(name, decls)}; "
            f"allowed: {', '.join(sorted(decls))}"
        )
    values = {}
    for name, decl in decls.items():
        raw = overrides[name] if name in overrides else _profile_value(decl, profile)
        values[name] = check(name, raw, decl)
    return Params(chapter, profile, MappingProxyType(values), tuple(overrides))


def _profile_value(decl: dict, profile: str) -> Any:
    value = decl["value"]
    if isinstance(value, dict):
        return value[profile]
    return value


def describe(decl: dict) -> str:
    """What a declaration allows, in words: 'a float > 0', 'one of cpu, cuda', ..."""
    kind = decl["type"]
    words = {
        "int": "an integer", "float": "a number", "str": "a string", "bool": "true or false",
        "path": "a folder path", "list[int]": "a list of integers", "list[float]": "a list of numbers",
    }[kind]
    if "choices" in decl:
        words = "one of " + ", ".join(map(str, decl["choices"]))
    bounds = [f"{op} {decl[key]}" for key, op in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")) if key in decl]
    if bounds:
        words += (" with every element " if kind.startswith("list") else " ") + " and ".join(bounds)
    if decl.get("min_len"):
        words += f", at least {decl['min_len']} element(s)"
    if decl.get("nullable"):
        words += ", or null"
    return words


def check(name: str, value: Any, decl: dict) -> Any:
    """``value`` converted to the declared type, or :class:`ParameterError` naming ``name``."""
    kind = decl["type"]
    fail = lambda: ParameterError(  # noqa: E731
        f"parameter {name!r} must be {describe(decl)}; got {value!r} ({type(value).__name__})"
    )
    if value is None:
        if decl.get("nullable"):
            return None
        raise fail()
    if kind.startswith("list"):
        if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
            raise fail()
        items = list(value)
        if len(items) < decl.get("min_len", 0):
            raise fail()
        elem = "int" if kind == "list[int]" else "float"
        converted = [_scalar(elem, v) for v in items]
        if any(c is None for c in converted) or not all(_in_bounds(c, decl) for c in converted):
            raise fail()
        return tuple(converted)
    converted = _scalar(kind, value)
    if converted is None or not _in_bounds(converted, decl):
        raise fail()
    if "choices" in decl and converted not in decl["choices"]:
        raise fail()
    return converted


def _scalar(kind: str, v: Any) -> Any:
    if kind == "bool":
        return v if isinstance(v, bool) else None
    if isinstance(v, bool):  # True is an int in Python; never accept it as a number
        return None
    if kind == "int":
        if isinstance(v, int):
            return v
        if isinstance(v, float) and v.is_integer():
            return int(v)
        return None
    if kind == "float":
        return float(v) if isinstance(v, (int, float)) else None
    if kind in ("str", "path"):
        return str(v) if isinstance(v, (str, Path)) else None
    return None


def _in_bounds(v: Any, decl: dict) -> bool:
    if not isinstance(v, (int, float)):
        return True
    return (
        ("gt" not in decl or v > decl["gt"])
        and ("ge" not in decl or v >= decl["ge"])
        and ("lt" not in decl or v < decl["lt"])
        and ("le" not in decl or v <= decl["le"])
        and v == v  # NaN is never in range
    )


def _suggest(word: str, options) -> str:
    close = difflib.get_close_matches(word, list(options), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
