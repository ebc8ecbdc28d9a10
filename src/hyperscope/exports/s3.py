"""Export files on an S3-compatible store (AWS S3, MinIO, Ceph, ...), so that every API process on every
machine shares them, with links the store itself signs (pre-signed GETs that expire with our own links).

Objects are named `<prefix>/<random id>.<suffix>`; callers never choose a key. Bounded like the local folder:
objects older than `keep_seconds` are deleted (at most one listing a minute), and a bucket lifecycle rule
can do the same (docs/scaling.md).

hyperscope deletes only what it created, even in a bucket it shares: a prefix is required (never a bare
bucket), only keys of its own naming directly under that prefix are considered, and each is deleted only
if it carries the `hyperscope: export` metadata written with it. boto3 exceptions become ours here.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from hyperscope.errors import ConfigError, NotFound, RetryLater
from hyperscope.exports.documents import FORMATS
from hyperscope.exports.storage import valid_name

PURGE_EVERY_SECONDS = 60.0
MARKER = {"hyperscope": "export"}  # object metadata written with every file; nothing without it is deleted


def parse_s3_url(url: str) -> tuple[str, str]:
    """(bucket, prefix) of s3://bucket/prefix."""
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc:
        raise ConfigError(f"--files: expected s3://bucket/prefix, got {url!r}")
    prefix = parts.path.strip("/")
    if not prefix:
        raise ConfigError(
            f"--files: {url} names a whole bucket; give a prefix only hyperscope writes to, "
            f"e.g. s3://{parts.netloc}/hyperscope-exports (its old files are deleted)"
        )
    return parts.netloc, prefix


class S3Files:
    def __init__(
        self,
        url: str,
        *,
        endpoint_url: str | None = None,
        max_bytes: int,
        keep_seconds: int = 180,
        client: Any = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        import boto3
        from botocore.config import Config

        self.bucket, self.prefix = parse_s3_url(url)
        self.max_bytes = max_bytes
        self.keep = keep_seconds
        self._client = client or boto3.client(
            "s3",
            endpoint_url=endpoint_url,
            config=Config(retries={"max_attempts": 3}, connect_timeout=5, read_timeout=30, signature_version="s3v4"),
        )
        self._clock = clock
        self._lock = threading.Lock()
        self._build_lock = threading.Lock()
        self._purged = -PURGE_EVERY_SECONDS
        self._used = 0
        try:
            self._client.head_bucket(Bucket=self.bucket)
        except Exception as e:
            raise ConfigError(f"--files {url}: the bucket cannot be reached ({_reason(e)})") from e

    def _key(self, file_id: str) -> str:
        if not valid_name(file_id):
            raise NotFound("no such export file")
        return f"{self.prefix}/{file_id}"

    def put(self, data: bytes, suffix: str, file_id: str | None = None) -> str:
        """Upload bytes under `file_id` (a new random one when None; a single PUT: the object appears whole or
        not at all, replacing an older one of the same id); returns the file id."""
        used = self.purge()
        if used + len(data) > self.max_bytes:
            raise RetryLater("export storage is full; try again in a few minutes")
        file_id = file_id or f"{secrets.token_hex(16)}.{suffix}"
        try:
            self._client.put_object(
                Bucket=self.bucket, Key=self._key(file_id), Body=data, ContentType=FORMATS[suffix], Metadata=MARKER
            )
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
        age = self._clock() - head["LastModified"].timestamp()
        return age < self.keep / 2

    @contextmanager
    def building(self, file_id: str) -> Iterator[None]:
        """This process's lock only: processes on other machines may build the same file at the same moment
        (the same bytes under the same id; the later PUT replaces the earlier)."""
        with self._build_lock:
            yield

    def presigned(self, file_id: str, name: str, seconds: int) -> str | None:
        try:
            url: str = self._client.generate_presigned_url(
                "get_object",
                Params={
                    "Bucket": self.bucket,
                    "Key": self._key(file_id),
                    "ResponseContentDisposition": f'attachment; filename="{name}"',
                },
                ExpiresIn=seconds,
            )
        except Exception as e:
            raise RetryLater("the download link could not be made; try again", detail=_reason(e)) from e
        return url

    def path(self, file_id: str) -> Path:
        raise NotFound("export files live on S3; use the link the export route returned")

    def purge(self) -> int:
        """Delete our objects older than `keep_seconds` (one listing a minute at most); returns the bytes ours
        still hold. Objects under the prefix that are not ours are neither counted nor touched."""
        now = self._clock()
        with self._lock:
            if now - self._purged < PURGE_EVERY_SECONDS:
                return self._used
            self._purged = now
        used, doomed = 0, []
        try:
            pages = self._client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=f"{self.prefix}/")
            for page in pages:
                for item in page.get("Contents", []):
                    name = str(item["Key"])[len(self.prefix) + 1 :]
                    if not valid_name(name):  # not of our naming (or in a sub-folder): never ours
                        continue
                    if now - item["LastModified"].timestamp() > self.keep:
                        doomed.append(item["Key"])
                    else:
                        used += int(item["Size"])
            ours = [{"Key": key} for key in doomed if self._is_ours(key)]
            for start in range(0, len(ours), 1000):
                self._client.delete_objects(Bucket=self.bucket, Delete={"Objects": ours[start : start + 1000]})
        except Exception as e:
            raise RetryLater("export storage could not be tidied; try again later", detail=_reason(e)) from e
        with self._lock:
            self._used = used
        return used

    def _is_ours(self, key: str) -> bool:
        """Whether the object carries the marker hyperscope writes with each file."""
        head = self._client.head_object(Bucket=self.bucket, Key=key)
        return all(head.get("Metadata", {}).get(k) == v for k, v in MARKER.items())


def _reason(error: Exception) -> str:
    response = getattr(error, "response", None)
    if isinstance(response, dict) and "Error" in response:
        return f"{response['Error'].get('Code')}: {response['Error'].get('Message')}"
    return f"{type(error).__name__}: {error}"
