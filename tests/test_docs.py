"""The README keeps up with the code: every setting is in its configuration table, every route in its tour."""

import re
from pathlib import Path

from hyperscope.settings import Settings

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_every_setting_is_documented_in_the_readme_and_has_a_description():
    table = README[README.index("## Configuration") :]
    table = table[: table.index("\n## ")]
    documented = set(re.findall(r"`([a-z0-9_]+)`", table))
    for name, field in Settings.model_fields.items():
        assert name in documented, f"README configuration table lacks {name}"
        assert field.description, f"setting {name} has no description"


def test_every_literal_default_in_the_readme_is_the_code_s_default():
    table = README[README.index("## Configuration") :]
    rows = re.findall(r"^\| `([a-z0-9_]+)` \| `([^`]+)` \|", table, re.M)
    assert len(rows) >= 15
    for name, default in rows:
        actual = Settings.model_fields[name].default
        assert default == str(actual) or float(default) == actual, (name, default, actual)


def test_the_readme_starts_with_the_two_commands():
    first_block = README[README.index("```") : README.index("```", README.index("```") + 3)]
    assert re.findall(r"^(scripts/\w+)", first_block.split("\n", 1)[1], re.M) == ["scripts/run", "scripts/test"]
