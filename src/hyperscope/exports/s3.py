"""Export files on an S3-compatible store (AWS S3, MinIO, Ceph, ...), so that every API process on every
machine shares them, with links the store itself signs (pre-signed GETs that expire with our own links).

Objects are named `<prefix>/<random id>.<suffix>`; callers never choose a key. Bounded like the local folder:
objects older than `keep_seconds` are deleted (at most one listing a minute), and a bucket lifecycle rule
can do the same (docs/scaling.md). boto3 exceptions become ours here.
"""

from __future__ import annotations

import secrets
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from hyperscope.errors import ConfigError, NotFound, RetryLater
from hyperscope.exports.documents import FORMATS
from hyperscope.exports.storage import valid_name

PURGE_EVERY_SECONDS = 60.0


def parse_s3_url(url: str) -> tuple[str, str]:
    """(bucket, prefix) of s3://bucket/prefix."""
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc:
        raise ConfigError(f"--files: expected s3://bucket/prefix, got {url!r}")
    return parts.netloc, parts.path.strip("/")


class S3Files:
    def __init__(self, url: str, *, endpoint_url: str | None = None, max_bytes: int, keep_seconds: int = 180,
                 client: Any = None) -> None:  # fmt: skip
        import boto3
        from botocore.config import Config

        self.bucket, self.prefix = parse_s3_url(url)
        self.max_bytes = max_bytes
        self.keep = keep_seconds
        self._client = client or boto3.client(
            "s3", endpoint_url=endpoint_url, config=Config(retries={"max_attempts": 3}, connect_timeout=5,
                                                           read_timeout=30, signature_version="s3v4"),
        )  # fmt: skip
        self._lock = threading.Lock()
        self._purged = 0.0
        self._used = 0
        try:
            self._client.head_bucket(Bucket=self.bucket)
        except Exception as e:
            raise ConfigError(f"--files {url}: the bucket cannot be reached ({_reason(e)})") from e

    def _key(self, file_id: str) -> str:
        if not valid_name(file_id):
            raise NotFound("no such export file")
        return f"{self.prefix}/{file_id}" if self.prefix else file_id

    def put(self, data: bytes, suffix: str) -> str:
        """Upload bytes (a single PUT: the object appears whole or not at all); returns the file id."""
        used = self.purge()
        if used + len(data) > self.max_bytes:
            raise RetryLater("export storage is full; try again in a few minutes")
        file_id = f"{secrets.token_hex(16)}.{suffix}"
        try:
            self._client.put_object(Bucket=self.bucket, Key=self._key(file_id), Body=data,
                                    ContentType=FORMATS[suffix])  # fmt: skip
        except Exception as e:
            raise RetryLater("the export could not be stored; try again later", detail=_reason(e)) from e
        with self._lock:
            self._used += len(data)
        return file_id

    def keep_alive(self, file_id: str) -> bool:
        """Whether the file is still there and young enough to outlive a new link (objects cannot be touched,
        so a file near the end of its life is rebuilt instead of linked again)."""
        try:
            head = self._client.head_object(Bucket=self.bucket, Key=self._key(file_id))
        except Exception:
            return False
        age = time.time() - head["LastModified"].timestamp()
        return age < self.keep / 2

    def presigned(self, file_id: str, name: str, seconds: int) -> str | None:
        try:
            url: str = self._client.generate_presigned_url(
                "get_object",
                Params={"Bucket": self.bucket, "Key": self._key(file_id),
                        "ResponseContentDisposition": f'attachment; filename="{name}"'},
                ExpiresIn=seconds,
            )  # fmt: skip
        except Exception as e:
            raise RetryLater("the download link could not be made; try again", detail=_reason(e)) from e
        return url

    def path(self, file_id: str) -> Path:
        raise NotFound("export files live on S3; use the link the export route returned")

    def purge(self) -> int:
        """Delete objects older than `keep_seconds` (one listing a minute at most); returns the bytes held."""
        now = time.time()
        with self._lock:
            if now - self._purged < PURGE_EVERY_SECONDS:
                return self._used
            self._purged = now
        used, doomed = 0, []
        try:
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=f"{self.prefix}/" if self.prefix else ""
            )
            for page in pages:
                for item in page.get("Contents", []):
                    if now - item["LastModified"].timestamp() > self.keep:
                        doomed.append({"Key": item["Key"]})
                    else:
                        used += int(item["Size"])
            for start in range(0, len(doomed), 1000):
                self._client.delete_objects(Bucket=self.bucket, Delete={"Objects": doomed[start : start + 1000]})
        except Exception as e:
            raise RetryLater("export storage could not be tidied; try again later", detail=_reason(e)) from e
        with self._lock:
            self._used = used
        return used


def _reason(error: Exception) -> str:
    response = getattr(error, "response", None)
    if isinstance(response, dict) and "Error" in response:
        return f"{response['Error'].get('Code')}: {response['Error'].get('Message')}"
    return f"{type(error).__name__}: {error}"
