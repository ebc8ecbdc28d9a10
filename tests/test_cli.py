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
