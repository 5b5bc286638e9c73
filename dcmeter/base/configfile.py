"""Load a TOML file into a pydantic model, turning every failure into one clear message."""

from __future__ import annotations

import re
import tomllib
import types
from pathlib import Path
from typing import Any, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel, SecretStr, ValidationError

M = TypeVar("M", bound=BaseModel)


class ConfigError(Exception):
    """A configuration file is unusable; str() names the file, the key, the value and the fix.

    One line per fault (`lines`), so one run reports every fault of a file.
    """

    def __init__(self, *lines: str) -> None:
        super().__init__("\n".join(lines))
        self.lines = [part for line in lines for part in line.split("\n")]


class Faults:
    """The faults found so far in one file; each section is checked even after one failed."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, error: ConfigError) -> None:
        """Keep the lines of `error`."""
        self.lines.extend(error.lines)

    def model(
        self, path: Path, model: type[M], data: Any, prefix: tuple[int | str, ...] = ()
    ) -> M | None:
        """Validate `data` against `model`; keep its faults and return None when it is bad."""
        try:
            return load_model(path, model, data, prefix)
        except ConfigError as exc:
            self.add(exc)
            return None

    def raise_any(self) -> None:
        """Raise one ConfigError holding every fault kept, if any."""
        if self.lines:
            raise ConfigError(*self.lines)


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


def _step(annotation: Any, item: int | str) -> Any:
    """The type one step (`item`: a field name, list index or dict key) inside `annotation`."""
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        for arg in get_args(annotation):
            found = _step(arg, item)
            if found is not None:
                return found
        return None
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        if not isinstance(item, str):
            return None
        for name, field in annotation.model_fields.items():
            if item in (name, field.alias):
                return field.annotation
        return None
    args = get_args(annotation)
    if origin in (list, tuple, set, frozenset) and args and isinstance(item, int):
        return args[0]
    if origin is dict and len(args) == 2 and isinstance(item, str):
        return args[1]
    return None


def _table(annotation: Any) -> type[BaseModel] | None:
    """The model `annotation` stands for (through Optional), or None."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if get_origin(annotation) in (Union, types.UnionType):
        for arg in get_args(annotation):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                return arg
    return None


def _at(model: type[BaseModel], loc: tuple[int | str, ...]) -> Any:
    """The annotation of the value at `loc` inside `model` (None when unknown)."""
    current: Any = model
    for item in loc:
        current = _step(current, item)
        if current is None:
            return None
    return current


def _is_secret(annotation: Any, name: int | str | None) -> bool:
    """Whether a value is a secret: typed SecretStr, or named like a password or community."""
    if annotation is SecretStr or SecretStr in get_args(annotation):
        return True
    return isinstance(name, str) and bool(SECRET_NAME.search(name))


# Names whose values are never shown, even when the model does not type them SecretStr.
SECRET_NAME = re.compile(r"password|passphrase|community|secret|token$|private_key")


def _describe(
    path: Path, err: ValidationError, model: type[BaseModel], prefix: tuple[int | str, ...] = ()
) -> list[str]:
    lines = []
    for e in err.errors(include_url=False):
        loc = tuple(e["loc"])
        value = e.get("input")
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "missing":
            shown = "(missing)"
        elif _is_secret(_at(model, loc), loc[-1] if loc else None):
            shown = "(hidden)"
        elif isinstance(value, dict | list):
            shown = "(a table)" if isinstance(value, dict) else "(a list)"
        else:
            shown = repr(value)
        if e["type"] == "extra_forbidden":
            table = _table(_at(model, loc[:-1])) if loc[:-1] else model
            where = _key(prefix + loc[:-1]) if prefix + loc[:-1] else "the top level"
            msg = "unknown key"
            if table is not None:
                valid = ", ".join(sorted(f.alias or n for n, f in table.model_fields.items()))
                msg = f"unknown key; the keys of {where} are: {valid}"
        lines.append(f"{path}: key {_key(prefix + loc)}: bad value {shown}: {msg}")
    return lines


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
        raise ConfigError(*_describe(path, exc, model, prefix)) from None


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


def read_secret_file(path: Path, where: str) -> str:
    """A secret kept in a file (a password): its text with one trailing newline stripped;
    raise ConfigError prefixed with `where` when the file cannot be read or holds nothing."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{where}: cannot read it: {exc}") from None
    secret = text.removesuffix("\n").removesuffix("\r")
    if not secret:
        raise ConfigError(f"{where}: the file is empty")
    return secret
