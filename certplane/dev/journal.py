"""Durability for the embedded DynamoDB: a write-ahead journal plus compacted snapshots.

moto keeps tables in memory. Every successful DynamoDB write made in this process is appended
to the journal and fsynced before the call returns, so anything acknowledged to a client
survives kill -9. At start the newest snapshot is loaded and its journal replayed; then both
are compacted into a new snapshot (generation + 1), which a graceful stop does too.
"""

from __future__ import annotations

import base64
import copy
import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

import boto3
import botocore.handlers
from botocore import xform_name
from botocore.exceptions import ClientError

logger = logging.getLogger(__name__)

WRITE_OPERATIONS = {
    "PutItem",
    "UpdateItem",
    "DeleteItem",
    "BatchWriteItem",
    "TransactWriteItems",
}
_CONTEXT_KEY = "certplane_journal_params"


def _encode(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return {"__bytes__": base64.b64encode(bytes(value)).decode()}
    if isinstance(value, dict):
        return {key: _encode(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set):
        return [_encode(item) for item in value]
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"__bytes__"}:
            return base64.b64decode(value["__bytes__"])
        return {key: _decode(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_decode(item) for item in value]
    return value


def _fsync_append(path: Path, line: str) -> None:
    with path.open("a", encoding="utf-8") as handle:
        handle.write(line + "\n")
        handle.flush()
        os.fsync(handle.fileno())


class Journal:
    """Records DynamoDB writes of this process and restores them into a fresh moto."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._local = threading.local()
        self.generation = self._read_generation()

    # -- recording ------------------------------------------------------------------------

    def install(self) -> None:
        """Hook every botocore session created from now on (call before any client exists)."""
        botocore.handlers.BUILTIN_HANDLERS.extend(
            [
                ("before-parameter-build.dynamodb", self._capture),
                ("after-call.dynamodb", self._record),
            ]
        )

    def _capture(self, params: dict[str, Any], model: Any, context: dict, **_: Any) -> None:
        if model.name in WRITE_OPERATIONS and not getattr(self._local, "replaying", False):
            context[_CONTEXT_KEY] = copy.deepcopy(params)

    def _record(self, http_response: Any, model: Any, context: dict, **_: Any) -> None:
        params = context.pop(_CONTEXT_KEY, None)
        if params is None or http_response.status_code != 200:
            return
        line = json.dumps({"op": model.name, "params": _encode(params)}, separators=(",", ":"))
        with self._lock:
            _fsync_append(self._journal_path(self.generation), line)

    # -- restoring and compacting ---------------------------------------------------------

    def _journal_path(self, generation: int) -> Path:
        return self.folder / f"journal.{generation}.jsonl"

    def _snapshot_path(self) -> Path:
        return self.folder / "snapshot.json"

    def _read_generation(self) -> int:
        path = self._snapshot_path()
        if not path.exists():
            return 0
        return int(json.loads(path.read_text())["generation"])

    def restore(self, table_names: list[str]) -> int:
        """Load the snapshot and replay its journal; returns how many writes were replayed."""
        client = boto3.client("dynamodb")
        self._local.replaying = True
        try:
            snapshot = self._snapshot_path()
            if snapshot.exists():
                tables = _decode(json.loads(snapshot.read_text())["tables"])
                for name, items in tables.items():
                    if name in table_names:
                        for start in range(0, len(items), 25):
                            client.batch_write_item(
                                RequestItems={
                                    name: [
                                        {"PutRequest": {"Item": item}}
                                        for item in items[start : start + 25]
                                    ]
                                }
                            )
            replayed = 0
            journal = self._journal_path(self.generation)
            if journal.exists():
                for line in journal.read_text(encoding="utf-8").splitlines():
                    try:
                        entry = json.loads(line)
                    except ValueError:
                        logger.warning("ignoring a torn last journal line")
                        break
                    try:
                        getattr(client, xform_name(entry["op"]))(**_decode(entry["params"]))
                    except ClientError as error:
                        logger.warning("journal entry %s did not replay: %s", entry["op"], error)
                    replayed += 1
            return replayed
        finally:
            self._local.replaying = False

    def compact(self, table_names: list[str]) -> None:
        """Write every table to a new snapshot generation, then drop the old journal."""
        client = boto3.client("dynamodb")
        with self._lock:
            tables: dict[str, list[dict[str, Any]]] = {}
            for name in table_names:
                items: list[dict[str, Any]] = []
                for page in client.get_paginator("scan").paginate(TableName=name):
                    items.extend(page["Items"])
                tables[name] = items
            old_journal = self._journal_path(self.generation)
            staging = self.folder / "snapshot.json.tmp"
            payload = {"generation": self.generation + 1, "tables": _encode(tables)}
            with staging.open("w", encoding="utf-8") as handle:
                json.dump(payload, handle, separators=(",", ":"))
                handle.flush()
                os.fsync(handle.fileno())
            staging.replace(self._snapshot_path())
            self.generation += 1
            old_journal.unlink(missing_ok=True)
            directory = os.open(self.folder, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
