"""The documentation: generated reference pages match the code, the README stays a short front
page with a complete map, and project files speak of the product, not of how it was built."""

from __future__ import annotations

import importlib.util
import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _reference_module():
    spec = importlib.util.spec_from_file_location("docs_reference", REPO / "scripts" / "reference.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def reference():
    return _reference_module()


def test_generated_reference_pages_are_current(reference) -> None:
    stale = reference.stale_pages()
    assert not stale, f"stale reference pages (run `make reference`): {stale}"


def test_a_missing_description_fails_the_generator(reference) -> None:
    with pytest.raises(reference.MissingDescription, match="has no description"):
        reference._need("  ", "command nothing")


def test_the_readme_is_a_short_front_page() -> None:
    size = (REPO / "README.md").stat().st_size
    assert size <= 12 * 1024, f"README.md is {size} bytes; the long text belongs in docs/"


def _readme_map() -> str:
    text = (REPO / "README.md").read_text()
    found = re.search(r"\[start:map\] -->\n```\n(.*?)```", text, re.S)
    assert found, "README.md lost its map"
    return found.group(1)


def test_the_readme_map_names_every_module_and_top_level_entry() -> None:
    names = set(re.findall(r"[\w.-]+(?:/|\.py|\.ya?ml|\.toml|\.md|\.lock|\.sh|\.in)?", _readme_map()))
    modules = [p for p in (REPO / "pipelines").rglob("*.py") if p.name != "__init__.py"]
    missing = sorted(str(p.relative_to(REPO)) for p in modules if p.name not in names)
    assert not missing, f"modules missing from README.md's map: {missing}"
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    top = {t.split("/")[0] + ("/" if "/" in t else "") for t in tracked if not t.startswith(".") and t != "README.md"}
    absent = sorted(t for t in top if t not in names and t.rstrip("/") not in names)
    assert not absent, f"top-level entries missing from README.md's map: {absent}"


def test_project_files_speak_of_the_product_not_its_history() -> None:
    found = subprocess.run(["git", "grep", "-n", "-i", "-E", r"session [0-9]|issue #[0-9]"], cwd=REPO,
                           capture_output=True, text=True, check=False)
    assert found.returncode == 1, f"history in project files:\n{found.stdout}"
