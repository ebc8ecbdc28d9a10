"""The commands as a user runs them: real processes, real signals, real HTTP."""

import re
import signal
import time

import pytest

from hyperscope.store import open_store
from tests.process import Running, free_port, hyperscope, wait_until, wal_files

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["run", "--port", "-1"], "--port"),
        (["run", "--port", "70000"], "--port"),
        (["run", "--host", "256.1.1.1"], "--host"),
        (["run", "--hours", "-5"], "--hours"),
        (["run", "--hours", "1e9"], "--hours"),
        (["run", "--cadence", "0"], "--cadence"),
        (["run", "--interval", "0"], "--interval"),
        (["backfill", "--scale", "huge"], "--scale"),
        (["live", "--seed", "-3"], "--seed"),
        (["serve", "--store", "foo://x"], "--store"),
        (["ingest", "--store", "postgresql:///nohost"], "--store"),
        (["serve", "--workers", "0"], "--workers"),
        (["serve", "--files", "s3://"], "--files"),
        (["serve", "--files", "s3://[bucket]"], "--files"),
    ],
)
def test_a_bad_setting_is_one_line_naming_its_flag_before_anything_starts(tmp_path, args, flag):
    data = tmp_path / "d"
    result = hyperscope(*args, "--data-dir", str(data))
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and flag in lines[0], result.stderr
    assert result.stdout == "" and not data.exists()  # nothing printed as running, nothing created


def test_an_unreachable_database_is_one_line_without_its_password(tmp_path):
    for args in (["status"], ["keys", "list"], ["serve"], ["ingest"]):
        result = hyperscope(
            *args, "--store", "postgresql://me:s3cret@127.0.0.1:1/db", "--data-dir", str(tmp_path / "d")
        )
        assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
        assert "cannot" in result.stderr and "s3cret" not in result.stderr and "***" in result.stderr


def test_keys_and_status_refuse_a_folder_without_hyperscope_data(tmp_path):
    for args in (["keys", "list"], ["keys", "create"], ["keys", "revoke", "abcd0123"], ["status"]):
        result = hyperscope(*args, "--data-dir", str(tmp_path / "typo"))
        assert result.returncode == 2 and "no hyperscope" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "typo").exists()  # a mistyped --data-dir never becomes a new empty store


def test_keys_create_rejects_an_absurd_rate_limit_in_one_line(tmp_path):
    assert hyperscope("backfill", "--scale", "tiny", "--hours", "0.5", "--data-dir", str(tmp_path)).returncode == 0
    result = hyperscope("keys", "create", "--rate-limit", "99999999999999999999", "--data-dir", str(tmp_path))
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "rate-limit" in result.stderr


def test_a_port_in_use_is_one_line_before_any_work(tmp_path):
    import socket

    port = free_port()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", port))
        busy.listen()
        result = hyperscope("run", "--scale", "tiny", "--port", str(port), "--data-dir", str(tmp_path / "d"))
    assert result.returncode == 2 and "already in use" in result.stderr
    assert "running" not in result.stdout and not (tmp_path / "d").exists()


def test_backfill_status_and_keys(tmp_path):
    data = str(tmp_path / "d")
    result = hyperscope("backfill", "--scale", "tiny", "--hours", "1", "--data-dir", data)
    assert result.returncode == 0, result.stderr
    assert re.search(r"state updates\s*│\s*4\s*│", result.stdout), result.stdout  # 1 hour at 15 minutes
    created = hyperscope("keys", "create", "--name", "ci", "--scope", "metrics", "--data-dir", data)
    key = created.stdout.strip().splitlines()[-1]
    assert created.returncode == 0 and key.startswith("hs_")
    listed = hyperscope("keys", "list", "--data-dir", data).stdout
    key_id = key.split("_")[1]
    assert key_id in listed and key not in listed and "metrics" in listed
    assert "revoked" in hyperscope("keys", "revoke", key_id, "--data-dir", data).stdout
    missing = hyperscope("keys", "revoke", "ffffffff", "--data-dir", data)
    assert missing.returncode == 2 and "no API key" in missing.stderr


def test_run_serves_keeps_ingesting_and_keys_change_while_it_runs(tmp_path):
    data = tmp_path / "d"
    run = Running("run", "--scale", "tiny", "--hours", "1", "--interval", "0.3", "--data-dir", str(data))
    try:
        assert run.key and run.base in run.stdout
        first = run.get("/health").json()
        assert first["status"] == "ok" and first["ingest"]["state"] in ("running", "idle")
        assert "path" not in str(first) and str(data) not in str(first)  # no file paths to anonymous callers
        coins = run.get("/api/external/positions/coins", run.key).json()
        assert coins and coins[0]["totalValue"] > 0
        # a second key, made by another process while this one holds the store
        made = hyperscope("keys", "create", "--name", "second", "--data-dir", str(data))
        assert made.returncode == 0, made.stderr
        second = made.stdout.strip().splitlines()[-1]
        wait_until(lambda: run.get("/api/external/segments", second).status_code == 200, "the new key works")
        revoked = hyperscope("keys", "revoke", second.split("_")[1], "--data-dir", str(data))
        assert revoked.returncode == 0, revoked.stderr
        wait_until(lambda: run.get("/api/external/segments", second).status_code == 401, "the key is refused")
        assert run.get("/api/external/segments", run.key).status_code == 200
        assert run.get("/health").json()["height"] > first["height"]  # live updates keep landing
    finally:
        run.signal(signal.SIGTERM)
        code, stderr = run.finish()
    assert code == 0, stderr  # SIGTERM is an orderly stop
    assert "Traceback" not in stderr and "leaked" not in stderr
    assert wal_files(data) == []  # the store was closed, not abandoned


def _stored_heights(data):
    store = open_store(data / "hyperscope.duckdb")
    try:
        return [r["height"] for r in store._dicts("SELECT height FROM state_updates ORDER BY height", [])]
    finally:
        store.close()


def catches(pid, sig):
    """Whether process `pid` has a handler of its own for `sig` (Linux: SigCgt in /proc/PID/status)."""
    try:
        with open(f"/proc/{pid}/status") as f:  # noqa: PTH123
            status = f.read()
    except OSError:
        return False
    caught = int(re.search(r"^SigCgt:\s*([0-9a-f]+)", status, re.M).group(1), 16)
    return bool(caught >> (int(sig) - 1) & 1) and bool(caught >> (int(signal.SIGTERM) - 1) & 1)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_stop_signal_at_any_moment_of_start_up_ends_with_a_line_and_its_code(tmp_path, sig):
    """From the interpreter's first steps to serving: wherever the signal lands, the process ends by itself
    with 130 (Ctrl-C) or 0, a line or two, no traceback, and a store the next start opens."""
    expected = 130 if sig == signal.SIGINT else 0
    for k, delay in enumerate((0.0, 0.1, 0.3, 0.7, 1.5, 3.0)):
        data = tmp_path / f"d{k}"
        run = Running(
            "run", "--scale", "tiny", "--hours", "2", "--interval", "0.3", "--data-dir", str(data), wait=False
        )
        # from the moment its entry point catches the signal (before that, no program can: the interpreter is
        # still starting); where it lands then is what varies, and every outcome below holds wherever it lands
        wait_until(lambda run=run: catches(run.proc.pid, sig) or run.proc.poll() is not None, "the handlers")
        time.sleep(delay)
        run.signal(sig)
        code, stderr = run.finish()
        assert code == expected, (delay, stderr)
        assert "Traceback" not in stderr and "leaked" not in stderr, (delay, stderr)
        lines = [line for line in stderr.splitlines() if line.strip() and "backfill" not in line]
        assert len(lines) <= 2, (delay, stderr)
    done = hyperscope("status", "--data-dir", str(tmp_path / "d5"))
    assert done.returncode in (0, 2) and "Traceback" not in done.stderr, done.stderr


def test_an_interrupted_first_run_resumes_and_prints_its_key_once_ready(tmp_path):
    data = tmp_path / "d"
    args = ("run", "--scale", "tiny", "--hours", "40", "--interval", "0.3", "--data-dir", str(data))
    # Ctrl-C during the first backfill: one line, exit 130, no key made yet
    run = Running(*args, wait=False)
    wait_until(lambda: (data / "simulator.npz").exists(), "the backfill's first checkpoint")  # it is under way
    run.signal(signal.SIGINT)
    code, stderr = run.finish()
    assert code == 130, stderr
    assert "stopping after the current state update" in stderr
    for noise in ("Traceback", "leaked", "Query interrupted", "RuntimeError"):
        assert noise not in stderr, stderr
    assert "hs_" not in run.stdout  # no key was made for a store that is not ready
    interrupted = _stored_heights(data)
    assert 0 < len(interrupted) < 160, len(interrupted)  # it really stopped part-way
    # kill -9 during the resumed backfill
    checkpoint = (data / "simulator.npz").stat().st_mtime_ns
    run = Running(*args, wait=False)
    wait_until(lambda: (data / "simulator.npz").stat().st_mtime_ns != checkpoint, "a checkpoint of the resumed run")
    run.proc.kill()
    run.finish()
    # the next start resumes, finishes the backfill, then makes and prints the first key
    run = Running(*args)
    try:
        assert run.key is not None
        assert run.get("/api/external/segments", run.key).status_code == 200
    finally:
        run.signal(signal.SIGTERM)
        code, stderr = run.finish()
    assert code == 0, stderr
    heights = _stored_heights(data)
    steps = {b - a for a, b in zip(heights, heights[1:], strict=False)}
    assert steps == {10_000} and len(heights) >= 160  # every update once: no gap, no repeat, no second market


def test_restarting_with_another_market_is_refused_in_one_line(tmp_path):
    data = str(tmp_path / "d")
    assert hyperscope("backfill", "--scale", "tiny", "--hours", "1", "--data-dir", data).returncode == 0
    before = _stored_heights(tmp_path / "d")
    for flags in (["--scale", "small"], ["--scale", "tiny", "--seed", "8"], ["--scale", "tiny", "--cadence", "600"]):
        result = hyperscope("backfill", *flags, "--hours", "1", "--data-dir", data)
        assert result.returncode == 2 and "holds the simulator" in result.stderr, result.stderr
        assert result.stderr.count("\n") == 1
    assert _stored_heights(tmp_path / "d") == before


FAULTY = """
import sys, duckdb
from hyperscope.store import duckdb as backend
limit = int(sys.argv.pop(1))
original = backend.DuckDBStore.write_update
calls = []
def write_update(self, batch):
    calls.append(batch.height)
    if len(calls) > limit:
        with self._errors():
            raise duckdb.InternalException("simulated: an internal error")
    return original(self, batch)
backend.DuckDBStore.write_update = write_update
from hyperscope.__main__ import main; main()
"""


def test_a_fatal_store_error_stops_the_process_with_one_line_and_exit_1(tmp_path):
    run = Running(
        "6",
        "run",
        "--scale",
        "tiny",
        "--hours",
        "1",
        "--interval",
        "0.2",
        "--data-dir",
        str(tmp_path / "d"),
        code=FAULTY,
    )
    code, stderr = run.finish(timeout=30)
    assert code == 1, stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("error: ingest stopped: the store failed (InternalException)"), stderr
    assert "Traceback" not in stderr


def test_a_fresh_run_fills_every_24_hour_comparison_from_the_start(tmp_path):
    """The default history holds a state update more than 24 h old: `data24HoursAgo` and the past* fields of
    the breakdowns are filled on the first request, as upstream's examples show them."""
    import httpx

    run = Running("run", "--scale", "tiny", "--interval", "60", "--data-dir", str(tmp_path / "d"))
    try:

        def fetch(path: str) -> dict:
            link = run.get(path, run.key)
            follow = httpx.get(link.headers["location"], timeout=30) if link.status_code == 302 else link
            return follow.json()

        equity = fetch("/api/external/exports/total-wallets-equity-chart-data")
        assert equity["data24HoursAgo"] and equity["athData"]
        breakdown = fetch("/api/external/exports/coins/BTC/position-breakdown-by-size")["breakdownBySize"]
        assert any(b["pastPositionCount"] for b in breakdown)
        assert all(b["pastPositionCount"] is not None for b in breakdown)
    finally:
        run.signal(signal.SIGTERM)
        assert run.finish()[0] == 0


def test_a_stop_signal_whose_start_up_exception_python_dropped_still_stops_the_command(capsys):
    """Python runs a signal handler anywhere, also inside a finalizer, where the early handler's exception is
    printed as "ignored" and dropped; the command's handlers must still see the stop (a run once served on)."""
    from hyperscope import interrupts as entry
    from hyperscope.runtime import Signals

    saved = {s: signal.getsignal(s) for s in entry.STOP_SIGNALS}
    entry.install_early_handlers()
    try:

        class Finalized:
            def __del__(self) -> None:
                entry._early(signal.SIGTERM, None)  # raised where Python can only drop it

        Finalized()
        assert "Exception ignored" not in capsys.readouterr().err  # a dropped stop is no error to print
        signals = Signals()
        with signals.installed():
            assert signals.stop.is_set() and signals.code == 0
        assert "SIGTERM: stopping" in capsys.readouterr().err
        with Signals().installed() as again:  # taken over once, not forever
            assert not again.stop.is_set()
    finally:
        for s, handler in saved.items():
            signal.signal(s, handler)


def test_a_stop_a_library_turned_into_its_own_error_is_still_a_stop():
    """DuckDB answers a signal handler's exception raised inside a query with its own `RuntimeError("Query
    interrupted")`: during start-up that is the stop asked for (one line, its code), never a traceback."""
    code = """
import signal
from hyperscope import interrupts as entry
from hyperscope.cli import entry as cli
entry.install_early_handlers()
def app():
    try:
        entry._early(signal.SIGTERM, None)
    except entry.Interrupted:
        raise RuntimeError("Query interrupted") from None
cli.app = app
cli.main()
"""
    done = hyperscope(code=code)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "interrupted during start-up" in done.stderr


def test_a_stop_inside_a_deferred_section_ends_the_section_first():
    """DuckDB's module aborts the process (SIGABRT) when a handler raises inside its import, which builds enums
    through Python: a stop signal there is only recorded, and raised once the import is over."""
    code = """
import os, signal, time
from hyperscope import interrupts
interrupts.install_early_handlers()
try:
    with interrupts.deferred():
        os.kill(os.getpid(), signal.SIGTERM)
        deadline = time.monotonic() + 60
        while not interrupts._pending and time.monotonic() < deadline:
            time.sleep(0.001)
        print("section ran to its end", interrupts._pending)
    print("not reached")
except interrupts.Interrupted as e:
    print("stopped with", e.code)
"""
    done = hyperscope(code=code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["section ran to its end [15]", "stopped with 0"], done.stdout


def test_a_stop_while_duckdb_builds_its_enums_is_a_stop_not_an_abort(tmp_path):
    """The signal CI once caught: landing while DuckDB's import builds its `StatementType` enum through Python,
    the early handler's exception made nanobind abort the process (exit -6, "Critical nanobind error")."""
    code = f"""
import enum, os, signal, sys
from hyperscope import __main__ as entry_point, interrupts
real = enum.EnumType.__setattr__
landed = []
def setattr_(cls, name, value):
    if not landed and cls.__name__ == "StatementType":
        landed.append(name)
        os.kill(os.getpid(), signal.SIGTERM)
        while not interrupts._pending:  # the handler has run before DuckDB goes on
            pass
    return real(cls, name, value)
enum.EnumType.__setattr__ = setattr_
sys.argv = ["hyperscope", "status", "--data-dir", {str(tmp_path)!r}]
try:
    entry_point.main()
finally:
    print("landed", bool(landed), file=sys.stderr)
"""
    done = hyperscope(code=code)
    assert "landed True" in done.stderr, done.stderr  # the signal did land inside DuckDB's import
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "interrupted during start-up" in done.stderr


def test_every_settings_flag_is_an_option_described_by_its_field():
    """Flags are made from the Settings fields (cli/options.py): each one exists on some command, with the
    field's own description as its help."""
    import typer.main

    from hyperscope.cli import app
    from hyperscope.settings import FLAGS, Settings

    group = typer.main.get_command(app)
    seen: dict[str, str] = {}

    def collect(command) -> None:  # type: ignore[no-untyped-def]
        for sub in getattr(command, "commands", {}).values():
            collect(sub)
        for param in command.params:
            for flag in getattr(param, "opts", []):
                seen[flag] = getattr(param, "help", "") or ""

    collect(group)
    for name, flag in FLAGS.items():
        assert flag in seen, flag
        assert seen[flag] == Settings.model_fields[name].description, flag


def test_a_stop_that_python_wrapped_in_its_own_error_during_the_imports_is_still_a_stop():
    """A signal during an import can land inside a class body, where Python wraps the handler's exception in
    its own RuntimeError ("Error calling __set_name__ ..."): one line and the signal's code, no traceback."""
    code = """
import builtins, signal
from hyperscope import __main__ as entry_point, interrupts
real = builtins.__import__
def importing(name, *args, **kwargs):
    if name == "hyperscope.cli":
        try:
            interrupts._early(signal.SIGINT, None)
        except interrupts.Interrupted as e:
            raise RuntimeError("Error calling __set_name__ on 'cached_property' instance") from e
    return real(name, *args, **kwargs)
builtins.__import__ = importing
entry_point.main()
"""
    done = hyperscope(code=code)
    assert done.returncode == 130, done.stderr
    assert "Traceback" not in done.stderr and "interrupted during start-up" in done.stderr
