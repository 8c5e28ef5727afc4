"""The published status objects (CRLs, CA certificates) in S3, keyed as their URL paths.

In AWS, CloudFront serves the bucket over plain HTTP at the status base URL; `certplane dev`
serves the same keys from its embedded S3 on the status port.
"""

from __future__ import annotations

import os
from typing import Any

from botocore.exceptions import ClientError

STATUS_BUCKET_ENV = "CERTPLANE_STATUS_BUCKET"
STATUS_BUCKET_DEFAULT = "certplane-status"
CONTENT_TYPES = {".crl": "application/pkix-crl", ".cer": "application/pkix-cert"}


def content_type(key: str) -> str:
    return CONTENT_TYPES.get(os.path.splitext(key)[1], "application/octet-stream")


class StatusStore:
    """Put and get status objects; a missing key is None, never an exception."""

    def __init__(self, bucket: str | None = None, client: Any = None) -> None:
        self.bucket = bucket or os.environ.get(STATUS_BUCKET_ENV, STATUS_BUCKET_DEFAULT)
        if client is None:
            # Imported here: every handler loads this module for the bucket's name (through
            # certplane.resources), only the status Lambdas talk to S3, and botocore alone
            # (which pynamodb loads anyway) is a fifth of boto3's import.
            import boto3

            client = boto3.client("s3")
        self._client = client

    def put(self, key: str, data: bytes, max_age: int) -> None:
        self._client.put_object(
            Bucket=self.bucket,
            Key=key,
            Body=data,
            ContentType=content_type(key),
            CacheControl=f"public, max-age={max(max_age, 0)}",
        )

    def get(self, key: str) -> tuple[bytes, str, str] | None:
        """(body, content type, cache control) of `key`, or None when it does not exist."""
        try:
            response = self._client.get_object(Bucket=self.bucket, Key=key)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in {"NoSuchKey", "404", "NoSuchBucket"}:
                return None
            raise
        return (
            response["Body"].read(),
            response.get("ContentType", content_type(key)),
            response.get("CacheControl", "no-cache"),
        )
