"""The issue catalogue: every issue a result can carry, with a stable code, in English and Chinese.

An issue is made with `issue(code, **params)`: an `Issue` is the English text (a `str`, so
`quality.issues` stays a list of English strings, the same texts as before) that also keeps
its `code` and `params`. `attach_details(result)` then adds, beside every `issues` list of a
result, a parallel `issue_details` list of `{"code", "params"}` (same order and length,
params JSON-plain), from which `render_issue(detail, lang)` writes the issue in either
language. A context issue (`ctx.*`) names where an inner issue happened: its `inner` param
is the inner issue's detail, rendered in the same language.

A text that is not an `Issue` (an old frozen result's texts, or an issue added the plain
way) gets the detail `{"code": "text", "params": {"text": ...}}` and is shown as written.
Converting a plain issue: add its code and templates to CATALOGUE (catalogue_*.py) and write
`issue("code", name=value, ...)` where the f-string was.
"""

from __future__ import annotations

import numbers
import string
from collections.abc import Mapping
from typing import Any

from dcmeter.collectors.evaluation.issue_texts import CATALOGUE, LIST_SEP, TRANSLATED, VALUES

TEXT = "text"  # the code of a text with no code (shown as written, in every language)
LANGS = ("en", "zh")


class Issue(str):
    """An issue's English text that keeps its catalogue code and parameters."""

    code: str
    params: dict[str, Any]

    def __new__(cls, text: str, code: str = TEXT, params: dict[str, Any] | None = None) -> Issue:
        self = super().__new__(cls, text)
        self.code = code
        self.params = params if params is not None else {"text": str(text)}
        return self


def detail(text: str) -> dict[str, Any]:
    """The `{"code", "params"}` detail of an issue text (a plain text gets code "text")."""
    if isinstance(text, Issue):
        return {"code": text.code, "params": dict(text.params)}
    return {"code": TEXT, "params": {"text": str(text)}}


def _plain(value: Any) -> Any:
    """A parameter as JSON-plain data; an inner issue becomes its detail."""
    if isinstance(value, Issue):
        return detail(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, numbers.Integral):  # numpy's integers too
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    return str(value)


def issue(code: str, **params: Any) -> Issue:
    """The issue `code` with `params` (its English text, code and params).

    `inner`, where a template has it, is an issue (an `Issue` or a plain text).
    """
    if code not in CATALOGUE:
        raise KeyError(f"issue code {code!r} is not in the catalogue")
    if "inner" in params and not isinstance(params["inner"], Issue):
        params["inner"] = Issue(str(params["inner"]))
    plain = {k: _plain(v) for k, v in params.items()}
    return Issue(render_issue({"code": code, "params": plain}, "en"), code, plain)


def add_issue(target: list[str] | dict[str, Any], code: str, **params: Any) -> Issue:
    """Append the issue `code` to `target`: a list of issues, or a quality block's `issues`."""
    made = issue(code, **params)
    (target.setdefault("issues", []) if isinstance(target, dict) else target).append(made)
    return made


class _Format(string.Formatter):
    """str.format that renders an inner issue's detail and translates known values."""

    def __init__(self, lang: str) -> None:
        self.lang = lang

    def format_field(self, value: Any, format_spec: str) -> Any:
        if isinstance(value, dict) and "code" in value:
            return render_issue(value, self.lang)
        return super().format_field(value, format_spec)

    def get_value(self, key: int | str, args: Any, kwargs: Mapping[str, Any]) -> Any:
        value = super().get_value(key, args, kwargs)
        words = VALUES.get(self.lang, {}) if key in TRANSLATED else {}
        if isinstance(value, list):
            sep = LIST_SEP.get(self.lang, {}).get(str(key), ", " if self.lang == "en" else "、")
            return sep.join(
                render_issue(v, self.lang) if isinstance(v, dict) else words.get(str(v), str(v))
                for v in value
            )
        if isinstance(value, str):
            return words.get(value, value)
        return value


def render_issue(item: Mapping[str, Any] | str, lang: str = "en") -> str:
    """Write an issue detail (or a plain issue text) in `lang` ("en" or "zh").

    A text without a detail, an unknown code or a detail whose params do not fit its
    template is shown as its English text when it has one (an old frozen result).
    """
    if isinstance(item, str):
        item = detail(item)
    code, params = item.get("code"), item.get("params") or {}
    if code == TEXT or code not in CATALOGUE:
        return str(params.get("text", ""))
    templates = CATALOGUE[code]
    template = templates.get(lang) or templates["en"]
    for text in (template, templates["en"]):
        try:
            return _Format(lang).vformat(text, (), dict(params))
        except (KeyError, IndexError, ValueError, TypeError):
            continue
    return str(params.get("text", code))


def details(issues: list[Any]) -> list[dict[str, Any]]:
    """The details of a list of issue texts, in the same order."""
    return [detail(i) for i in issues]


def _attach(x: Any) -> None:
    if isinstance(x, dict):
        for v in list(x.values()):
            _attach(v)
        if isinstance(x.get("issues"), list):
            x["issue_details"] = details(x["issues"])
    elif isinstance(x, list):
        for v in x:
            _attach(v)


def attach_details(result: dict[str, Any]) -> dict[str, Any]:
    """Add `issue_details` beside every `issues` list in `result` (in place); return it.

    Call it after the last issue is added: `quality.issue_details` and each AI run's.
    """
    _attach(result)
    return result
