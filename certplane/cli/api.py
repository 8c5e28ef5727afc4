"""How every `certplane` command calls the management API and prints what it answers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from certplane.cli.client import ApiClient, ApiError, Connection
from certplane.cli.options import errors

console = Console()


def refused(error: ApiError) -> typer.Exit:
    """Print a refusal as one line on stderr; raise the returned Exit (status 1)."""
    status = f" (HTTP {error.status})" if error.status else ""
    errors.print(f"[red]error[/red]{status}: {error.code}: {error.message}", highlight=False)
    return typer.Exit(1)


class Api:
    """The API the options name (--url/--token/--home/--ca-file), resolved at the first call."""

    def __init__(
        self, url: str | None, token: str | None, home: Path | None, ca_file: Path | None
    ) -> None:
        self._where = (url, token, home, ca_file)
        self._client: ApiClient | None = None

    @property
    def client(self) -> ApiClient:
        if self._client is None:
            self._client = ApiClient(Connection.resolve(*self._where))
        return self._client

    def __call__(
        self, method: str, path: str, body: dict[str, Any] | None = None, **params: Any
    ) -> Any:
        """One API call; a refusal becomes a one-line message and exit status 1."""
        try:
            return self.client.request(method, path, body, **params)
        except ApiError as error:
            raise refused(error) from None


def show(view: dict[str, Any], as_json: bool) -> None:
    """A view as JSON (for scripts) or as a key/value table; PEM fields are left to --out."""
    if as_json:
        typer.echo(json.dumps({k: v for k, v in view.items() if not k.endswith("_pem")}))
        return
    table = Table(show_header=False, box=None)
    for key, value in view.items():
        if key.endswith("_pem") or value in (None, [], {}):
            continue
        table.add_row(key, value if isinstance(value, str) else json.dumps(value))
    console.print(table)
