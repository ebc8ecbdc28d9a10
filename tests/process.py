"""`hyperscope` as a real subprocess: start it, read what it prints, talk to it over HTTP, signal it."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

MAIN = "from hyperscope.__main__ import main; main()"  # the console script's entry point
ENV = {**os.environ, "HYPERSCOPE_LOG_LEVEL": "WARNING", "COLUMNS": "200"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def hyperscope(*args: str, code: str = MAIN, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run a command to its end."""
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=ENV, timeout=timeout)


class Running:
    """A `hyperscope run|serve` process, read up to its "Press Ctrl-C" line."""

    def __init__(self, *args: str, code: str = MAIN, wait: bool = True) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code, *args, "--port", str(self.port)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=ENV,
        )
        self.base = f"http://127.0.0.1:{self.port}"
        self.stdout = ""
        if wait:
            self.wait_ready()

    def wait_ready(self, timeout: float = 90) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            line = self.proc.stdout.readline()  # type: ignore[union-attr]
            self.stdout += line
            if "Press Ctrl-C" in line or (not line and self.proc.poll() is not None):
                break
        assert "Press Ctrl-C" in self.stdout, self.stdout + self.finish()[1]

    @property
    def key(self) -> str | None:
        found = re.search(r"^(hs_[0-9a-f]{8}_[A-Za-z0-9_-]+)$", self.stdout, re.M)  # on a line of its own
        return found.group(1) if found else None

    def get(self, path: str, key: str | None = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.get(self.base + path, headers=headers, timeout=10)

    def signal(self, sig: int = signal.SIGTERM) -> None:
        self.proc.send_signal(sig)

    def finish(self, timeout: float = 60) -> tuple[int, str]:
        """Wait for the process to end: (exit code, everything it wrote to stderr)."""
        try:
            stdout, stderr = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            stdout, stderr = self.proc.communicate()
        self.stdout += stdout
        return self.proc.returncode, stderr


def wal_files(data_dir: Path) -> list[str]:
    return [p.name for p in data_dir.iterdir() if p.name.endswith(".wal")]


def wait_until(condition, what: str, timeout: float = 60.0, ignoring: tuple[type[BaseException], ...] = ()) -> None:
    """Poll `condition` until it holds; fail naming `what` after `timeout` seconds. Exceptions of `ignoring`
    count as "not yet" (a server that is still down). The one way tests wait: never a fixed sleep."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while True:
        try:
            if condition():
                return
        except ignoring as e:
            last = e
        assert time.monotonic() < deadline, f"not within {timeout} s: {what} (last: {last!r})"
        time.sleep(0.05)


def in_one_minute(run, seconds_needed: float = 20):
    """`run()` started early enough in a clock minute to end in it (rate limits count per minute); run again
    when the minute turned meanwhile (a loaded machine), so the result is always one window's."""
    for attempt in range(3):
        if attempt or time.time() % 60 > 60 - seconds_needed:  # a rerun starts in a minute nothing counted in
            time.sleep(60 - time.time() % 60 + 0.05)
        minute = int(time.time() // 60)
        result = run()
        if int(time.time() // 60) == minute:
            return result
    raise AssertionError("three runs each crossed a minute boundary")
