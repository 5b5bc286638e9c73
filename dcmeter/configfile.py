"""Load a TOML file into a pydantic model, turning every failure into one clear message."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


class ConfigError(Exception):
    """A configuration file is unusable; str() names the file, the key, the value and the fix."""


def _key(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif parts:
            parts.append(f".{item}")
        else:
            parts.append(str(item))
    return "".join(parts) or "(top level)"


def _describe(path: Path, err: ValidationError, prefix: tuple[int | str, ...] = ()) -> str:
    lines = []
    for e in err.errors(include_url=False):
        loc = prefix + tuple(e["loc"])
        value = e.get("input")
        if e["type"] == "missing":
            shown = "(missing)"
        elif isinstance(value, dict | list):
            shown = "(a table)" if isinstance(value, dict) else "(a list)"
        else:
            shown = repr(value)
        lines.append(f"{path}: key {_key(loc)}: bad value {shown}: {e['msg']}")
    return "\n".join(lines)


def read_toml(path: Path) -> dict[str, Any]:
    """Parse a TOML file, or raise ConfigError naming the file and the syntax error."""
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except PermissionError:
        raise ConfigError(f"{path}: permission denied") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def load_model(
    path: Path,
    model: type[M],
    data: Any = None,
    prefix: tuple[int | str, ...] = (),
) -> M:
    """Validate `data` (or the parsed file) against `model`; raise ConfigError on any fault.

    `prefix` is where `data` sits in the file, so a nested table's errors name the full key.
    """
    raw = read_toml(path) if data is None else data
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_describe(path, exc, prefix)) from None


def resolve_files(path: Path, section: Any, names: tuple[str, ...], key: str) -> None:
    """Take each file setting `names` of `section` (None: unset) from the config's folder,
    set it back resolved, and check it can be read; `key` prefixes the names in errors."""
    for name in names:
        value = getattr(section, name)
        if value is None:
            continue
        resolved = path.parent / value
        setattr(section, name, resolved)
        try:
            resolved.read_bytes()
        except OSError as exc:
            raise ConfigError(
                f"{path}: key {key}.{name}: bad value {str(value)!r}: cannot read"
                f" {resolved}: {exc.strerror or exc}"
            ) from None
