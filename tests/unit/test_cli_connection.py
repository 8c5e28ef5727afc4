"""The CLI finds its server and credentials without leaking the dev token elsewhere."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from certplane.cli.client import ApiError, Connection


@pytest.fixture
def dev_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("CERTPLANE_URL", "CERTPLANE_TOKEN", "CERTPLANE_CA_FILE", "CERTPLANE_HOME"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "ca").mkdir()
    (tmp_path / "ca/root.pem").write_text("root")
    (tmp_path / "admin-token").write_text("dev-token\n")
    (tmp_path / "endpoint.json").write_text(json.dumps({"url": "https://127.0.0.1:8443"}))
    return tmp_path


def test_the_dev_home_supplies_url_token_and_trust(dev_home: Path) -> None:
    connection = Connection.resolve(home=dev_home)
    assert connection.url == "https://127.0.0.1:8443"
    assert connection.token == "dev-token"
    assert connection.verify == str(dev_home / "ca/root.pem")


def test_the_dev_token_never_goes_to_another_server(dev_home: Path, monkeypatch) -> None:
    with pytest.raises(ApiError) as caught:
        Connection.resolve(url="https://certplane.example.com", home=dev_home)
    assert caught.value.code == "no_token"
    monkeypatch.setenv("CERTPLANE_TOKEN", "prod-token")
    connection = Connection.resolve(url="https://certplane.example.com", home=dev_home)
    assert connection.token == "prod-token" and connection.verify is True
