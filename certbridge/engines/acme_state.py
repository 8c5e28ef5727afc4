"""Where an ACME engine keeps what must outlive one process: a folder, or an S3 prefix.

An ACME CA knows an account only by its key and revokes only a certificate it is shown, so
the engine keeps the (encrypted) account key and every certificate it obtained. A Lambda's
/tmp is private to one execution environment, so in AWS the state is an S3 prefix shared by
all of them; `certplane dev` and tests use a folder. Both create the account key with
"create if absent" (O_EXCL, S3 If-None-Match) so two cold starts agree on one account.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Protocol

from certbridge.interface import TransientEngineError


class StateStore(Protocol):
    """Named blobs, each written once or replaced whole."""

    location: str

    def read(self, name: str) -> bytes | None:
        """The blob, or None when there is none."""
        ...

    def create(self, name: str, data: bytes) -> bool:
        """Store `data` unless `name` exists; False (and nothing written) when it does."""
        ...

    def write(self, name: str, data: bytes) -> None:
        """Store `data`, replacing what was there."""
        ...


class DirectoryState:
    """Files in one folder (mode 0700), each written with mode 0600 and fsynced."""

    def __init__(self, directory: str | Path) -> None:
        self.root = Path(directory)
        self.location = str(self.root)

    def _path(self, name: str) -> Path:
        path = self.root / name
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        return path

    def read(self, name: str) -> bytes | None:
        try:
            return (self.root / name).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as error:
            raise TransientEngineError(f"cannot read {self.root / name}: {error}") from None

    def create(self, name: str, data: bytes) -> bool:
        try:
            descriptor = os.open(self._path(name), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return False
        except OSError as error:
            raise TransientEngineError(f"cannot create {self.root / name}: {error}") from None
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        return True

    def write(self, name: str, data: bytes) -> None:
        path = self._path(name)
        staging = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            descriptor = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(staging, path)  # readers see the old blob or the new one, never half
        except OSError as error:
            raise TransientEngineError(f"cannot write {path}: {error}") from None


class S3State:
    """Objects under `s3://bucket/prefix/` (encrypt the bucket with SSE-KMS; block public
    access). The account key is encrypted before it is uploaded, whatever the bucket does."""

    def __init__(self, bucket: str, prefix: str = "", client: Any = None) -> None:
        # only deployments that keep ACME state in S3 need a client
        from certbridge.aws_session import engine_client

        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.location = f"s3://{bucket}/{self.prefix}"
        self._client = client if client is not None else engine_client("s3")

    def _key(self, name: str) -> str:
        return self.prefix + name

    def _failed(self, verb: str, name: str, error: Exception) -> TransientEngineError:
        return TransientEngineError(f"cannot {verb} {self.location}{name}: {error}")

    def read(self, name: str) -> bytes | None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return self._client.get_object(Bucket=self.bucket, Key=self._key(name))["Body"].read()
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise self._failed("read", name, error) from None
        except BotoCoreError as error:
            raise self._failed("read", name, error) from None

    def create(self, name: str, data: bytes) -> bool:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self._client.put_object(
                Bucket=self.bucket, Key=self._key(name), Body=data, IfNoneMatch="*"
            )
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code")
            if code in ("PreconditionFailed", "ConditionalRequestConflict", "412"):
                return False
            raise self._failed("create", name, error) from None
        except BotoCoreError as error:
            raise self._failed("create", name, error) from None
        return True

    def write(self, name: str, data: bytes) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self._client.put_object(Bucket=self.bucket, Key=self._key(name), Body=data)
        except (ClientError, BotoCoreError) as error:
            raise self._failed("write", name, error) from None


def open_state(location: str | Path) -> StateStore:
    """`s3://bucket/prefix` → S3State; anything else is a folder."""
    text = str(location)
    if text.startswith("s3://"):
        bucket, _, prefix = text.removeprefix("s3://").partition("/")
        if not bucket:
            raise ValueError(f"{text!r} names no bucket")
        return S3State(bucket, prefix)
    return DirectoryState(text)
