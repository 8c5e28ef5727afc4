"""The management API as the simulator uses it: revoke an EST device's certificate (EST has
no revocation), and read the inventory back to check the run."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

from certplane.simulate.http import Http, RequestFailed

PAGE_SIZE = 200  # the API's maximum


class Management:
    def __init__(self, http: Http, token: str) -> None:
        self.http = http
        self._headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def revoke(self, certificate_id: str, reason: str = "cessationOfOperation") -> float:
        reply = self.http.request(
            "POST",
            f"/v1/certificates/{certificate_id}/revoke",
            data=json.dumps({"reason": reason}).encode(),
            headers=self._headers,
        )
        if json.loads(reply.body).get("status") != "REVOKED":
            raise RequestFailed("revoke: the certificate is not REVOKED after revocation")
        return reply.seconds

    def certificates(self) -> Iterator[dict[str, Any]]:
        """Every certificate of the token's tenant (the paged listing, newest first)."""
        cursor: str | None = None
        while True:
            query = f"?limit={PAGE_SIZE}" + (f"&cursor={quote(cursor, safe='')}" if cursor else "")
            page = json.loads(
                self.http.request("GET", f"/v1/certificates{query}", headers=self._headers).body
            )
            yield from page["items"]
            cursor = page.get("next_cursor")
            if not cursor:
                return
