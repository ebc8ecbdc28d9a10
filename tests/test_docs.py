"""The docs keep up with the code: every setting is in the operator guide's configuration table, the README starts
with the two commands and stays short, and every doc it links to exists."""

import re
from pathlib import Path

from hyperscope.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
OPERATOR = (ROOT / "docs" / "operator.md").read_text()


def test_every_setting_is_documented_in_the_readme_and_has_a_description():
    table = OPERATOR[OPERATOR.index("## Configuration") :]
    documented = set(re.findall(r"`([a-z0-9_]+)`", table))
    for name, field in Settings.model_fields.items():
        assert name in documented, f"docs/operator.md configuration table lacks {name}"
        assert field.description, f"setting {name} has no description"


def test_every_literal_default_in_the_readme_is_the_code_s_default():
    table = OPERATOR[OPERATOR.index("## Configuration") :]
    rows = re.findall(r"^\| `([a-z0-9_]+)` \| `([^`]+)` \|", table, re.M)
    assert len(rows) >= 15
    for name, default in rows:
        actual = Settings.model_fields[name].default
        assert default == str(actual) or float(default) == actual, (name, default, actual)


def test_the_readme_starts_with_the_two_commands():
    first_block = README[README.index("```") : README.index("```", README.index("```") + 3)]
    assert re.findall(r"^(scripts/\w+)", first_block.split("\n", 1)[1], re.M) == ["scripts/run", "scripts/test"]


def test_the_readme_is_short_and_every_page_it_links_to_exists():
    assert README.count("\n") <= 200
    for link in re.findall(r"\]\(([^)#]+\.md)", README):
        assert (ROOT / link).is_file(), link
