import subprocess
import sys

from typer.testing import CliRunner

from hyperscope.cli import app


def hyperscope(*args, env=None):
    code = "from hyperscope.cli import main; main()"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env)


def test_user_mistakes_end_with_one_line_and_no_traceback(tmp_path):
    result = hyperscope("status", "--data-dir", str(tmp_path / "none"))
    assert result.returncode == 2
    assert "error: no store" in result.stderr and "Traceback" not in result.stderr
    bad = hyperscope("backfill", "--scale", "huge", "--data-dir", str(tmp_path))
    assert bad.returncode == 2 and "scale" in bad.stderr and "Traceback" not in bad.stderr


def test_backfill_status_and_keys(tmp_path):
    runner = CliRunner()
    data = str(tmp_path / "d")
    result = runner.invoke(app, ["backfill", "--scale", "tiny", "--hours", "1", "--data-dir", data])
    assert result.exit_code == 0, result.output
    assert "state updates" in result.output and "4" in result.output
    created = runner.invoke(app, ["keys", "create", "--name", "ci", "--data-dir", data])
    key = created.output.strip().splitlines()[-1]
    assert key.startswith("hs_")
    listed = runner.invoke(app, ["keys", "list", "--data-dir", data])
    key_id = key.split("_")[1]
    assert key_id in listed.output and key not in listed.output
    assert "revoked" in runner.invoke(app, ["keys", "revoke", key_id, "--data-dir", data]).output


def test_run_backfills_serves_and_keeps_ingesting(tmp_path):
    import os
    import re
    import signal
    import socket
    import time

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "HYPERSCOPE_LOG_LEVEL": "WARNING"}
    args = ["run", "--scale", "tiny", "--hours", "1", "--interval", "0.5", "--port", str(port),
            "--data-dir", str(tmp_path / "d")]  # fmt: skip
    code = "from hyperscope.cli import main; main()"
    proc = subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)  # fmt: skip
    try:
        lines = []
        deadline = time.time() + 60
        while time.time() < deadline:
            line = proc.stdout.readline()
            lines.append(line)
            if "Press Ctrl-C" in line or proc.poll() is not None:
                break
        text = "".join(lines)
        key = re.search(r"^(hs_[0-9a-f]{8}_[A-Za-z0-9_-]+)$", text, re.M)  # on a line of its own
        assert key and f"http://127.0.0.1:{port}" in text, text
        base = f"http://127.0.0.1:{port}"
        for _ in range(50):
            try:
                first = httpx.get(f"{base}/health").json()
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        assert first["status"] == "ok"
        coins = httpx.get(f"{base}/api/external/positions/coins",
                          headers={"Authorization": f"Bearer {key.group(0)}"}).json()  # fmt: skip
        assert coins and coins[0]["totalValue"] > 0
        time.sleep(2)
        assert httpx.get(f"{base}/health").json()["height"] > first["height"]  # live updates keep landing
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        finally:
            proc.stdout.close()
            proc.stderr.close()
    assert proc.returncode in (0, 130)
