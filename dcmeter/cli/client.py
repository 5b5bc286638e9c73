"""The collector's API from the command line: where it is, the token, one HTTP client.

Shared by `dcmeter window` and `dcmeter run`. The collector is `--collector URL`, else
$DCMETER_COLLECTOR, else http://127.0.0.1:8470; the bearer token is read from
`--token-file FILE`, else $DCMETER_TOKEN, never from an argument (any user could read it in
`ps`); an https collector is verified against `--ca-file`, else $DCMETER_CA, else the system
store. Every failure becomes a `CliError`: one line, exit status 1 (refused, unreachable) or
2 (usage).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx

DEFAULT_URL = "http://127.0.0.1:8470"
ENV_URL, ENV_TOKEN = "DCMETER_COLLECTOR", "DCMETER_TOKEN"
ENV_CA = "DCMETER_CA"  # CA file verifying an https collector (default: the system store)

class CliError(Exception):
    """A fault to report as one line; `code` is the exit status (1 refused, 2 usage)."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def positive_seconds(text: str) -> float:
    """An argparse type: a number of seconds above 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r}: give a number of seconds above 0")
    return value


def connection_options() -> argparse.ArgumentParser:
    """The options every collector client command takes: URL, token file, timeout."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--collector", default=None, metavar="URL",
                        help=f"collector base URL (default ${ENV_URL} or {DEFAULT_URL})")
    common.add_argument("--token-file", type=Path, default=None, metavar="FILE",
                        help=f"file holding the bearer token (default ${ENV_TOKEN})")
    common.add_argument("--timeout", type=positive_seconds, default=10.0, metavar="S",
                        help="seconds to wait for the collector (default 10)")
    common.add_argument("--ca-file", type=Path, default=None, metavar="FILE",
                        help=f"CA certificates verifying an https collector (default ${ENV_CA},"
                        " else the system store)")
    return common


def read_token(token_file: Path | None, env: Mapping[str, str] = os.environ) -> str | None:
    """The bearer token from `token_file`, else $DCMETER_TOKEN, else None; never echoed."""
    if token_file is not None:
        try:
            token = token_file.read_text().strip()
        except OSError as exc:
            raise CliError(f"--token-file {token_file}: {exc.strerror or exc}", 2) from None
        where = f"--token-file {token_file}"
    else:
        token = env.get(ENV_TOKEN, "").strip()
        where = f"${ENV_TOKEN}"
    if not token:
        if token_file is not None:
            raise CliError(f"{where}: the file is empty", 2)
        return None
    if not (token.isascii() and token.isprintable() and " " not in token):
        raise CliError(f"{where}: not a token (one line of printable ASCII, no spaces)", 2)
    return token


def ca_file(args: argparse.Namespace, env: Mapping[str, str] = os.environ) -> Path | None:
    """The CA file from --ca-file, else $DCMETER_CA, else None (the system store)."""
    given = getattr(args, "ca_file", None) or env.get(ENV_CA)
    return Path(given) if given else None


class Client:
    """The collector's windows API over httpx; every failure becomes a CliError."""

    def __init__(
        self, url: str, token: str | None, timeout: float = 10.0, ca_file: Path | None = None
    ) -> None:
        import httpx

        from dcmeter.base.tls import client_context

        if not url.startswith(("http://", "https://")):
            raise CliError(f"collector URL {url!r}: give http://HOST:PORT or https://…", 2)
        self.url = url.rstrip("/")
        self.has_token = token is not None
        self.ca_file = ca_file
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            verify: Any = True if ca_file is None else client_context(ca_file)
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            raise CliError(f"--ca-file {ca_file}: not readable PEM certificates: {exc}",
                           2) from None
        self.http = httpx.Client(base_url=f"{self.url}/api/v1", headers=headers,
                                 timeout=timeout, verify=verify)

    def _unreachable(self, exc: Exception) -> CliError:
        from dcmeter.base.tls import describe

        return CliError(describe(self.url, exc, self.ca_file)
                        or f"collector {self.url} unreachable: {exc}")

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.close()

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """Send one request; return the JSON body of a 2xx answer, else raise CliError."""
        import httpx

        try:
            r = self.http.request(method, path, **kwargs)
        except httpx.TimeoutException:
            raise CliError(f"collector {self.url} did not answer in time") from None
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from None
        if r.is_success:
            try:
                return r.json()
            except ValueError:
                raise CliError(
                    f"collector {self.url} answered {r.status_code} without JSON"
                ) from None
        raise CliError(self._refusal(r))

    def text(self, path: str, **kwargs: Any) -> str:
        """GET a non-JSON body (an HTML report); failures as in `call`."""
        import httpx

        try:
            r = self.http.get(path, **kwargs)
        except httpx.TimeoutException:
            raise CliError(f"collector {self.url} did not answer in time") from None
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from None
        if r.is_success:
            return r.text
        raise CliError(self._refusal(r))

    def _refusal(self, r: httpx.Response) -> str:
        try:
            detail: Any = r.json().get("detail")
        except (ValueError, AttributeError):
            detail = None
        if isinstance(detail, list):  # request validation: [{loc, msg, …}, …]
            detail = "; ".join(
                f"{'.'.join(str(x) for x in d.get('loc', [])[1:])}: {d.get('msg')}"
                for d in detail if isinstance(d, dict)
            )
        text = f"{detail or r.reason_phrase} ({r.status_code})"
        if r.status_code == 401 and not self.has_token:
            text += f"; give a token with ${ENV_TOKEN} or --token-file"
        return text
