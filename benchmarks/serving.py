"""`hyperscope serve` over a data folder, in its own process, for the benchmarks that drive it over HTTP."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx


@contextmanager
def served(
    data_dir: Path | str, port: int, duckdb_memory_mib: int | None = None, store: str | None = None, workers: int = 1
) -> Iterator[tuple[str, str]]:
    """Create a key with no practical rate limit, start `hyperscope serve` (over `store` when given, with
    `workers` processes) and wait for it; yields (base URL, key)."""
    env = {
        **os.environ,
        "HYPERSCOPE_DATA_DIR": str(data_dir),
        "HYPERSCOPE_PORT": str(port),
        "HYPERSCOPE_LOG_LEVEL": "WARNING",
        "HYPERSCOPE_WORKERS": str(workers),
    }
    if store:
        env["HYPERSCOPE_STORE"] = store
    if duckdb_memory_mib:
        env["HYPERSCOPE_DUCKDB_MEMORY_MIB"] = str(duckdb_memory_mib)
    exe = os.path.join(os.path.dirname(sys.executable), "hyperscope")
    key = (
        subprocess.run(
            [exe, "keys", "create", "--name", "bench", "--rate-limit", "1000000"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    server = subprocess.Popen([exe, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):  # up to 40 s: a large store takes a while to open
            try:
                httpx.get(f"{base}/health")
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        yield base, key
    finally:
        server.terminate()
        server.wait(timeout=30)
