"""The documentation site builds with warnings as errors, documents every public name, and
the maintainer's guide names only tests that exist."""

from __future__ import annotations

import ast
import html
import re
import subprocess
import sys
from pathlib import Path

import pytest

import opentrain_async
import opentrain_async.testing

from .cli_helpers import ROOT
from .tool_env import tool_env

ARCHITECTURE = ROOT / "docs" / "architecture.md"


def _build(site: Path) -> str:
    """``mkdocs build --strict`` (what ``make docs`` runs) into `site`; its log."""
    done = subprocess.run(  # noqa: S603 - our own interpreter and fixed arguments
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        env=tool_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stderr


@pytest.mark.slow  # waits a second or more of real time
def test_the_site_builds_strict_and_documents_every_public_name(tmp_path: Path) -> None:
    """Every name in ``opentrain_async.__all__`` and ``opentrain_async.testing.__all__`` has
    an entry (an HTML anchor) in the generated API reference."""
    log = _build(tmp_path / "site")
    assert "WARNING" not in log, log
    for page, module in (("sdk", opentrain_async), ("testing", opentrain_async.testing)):
        text = html.unescape((tmp_path / "site" / "reference" / page / "index.html").read_text())
        anchors = set(re.findall(r'id="([\w.]+)"', text))
        missing = [
            name
            for name in module.__all__
            if name != "__version__" and f"{module.__name__}.{name}" not in anchors
        ]
        assert missing == [], f"{page}: no reference entry for {missing}"


@pytest.mark.process
def test_a_broken_link_fails_the_build(tmp_path: Path) -> None:
    """Strict really is strict: a page linking to a missing page is an error, not a warning."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "index.md").write_text("# Home\n\n[gone](missing.md)\n", encoding="utf-8")
    (tmp_path / "mkdocs.yml").write_text("site_name: t\nstrict: true\n", encoding="utf-8")
    done = subprocess.run(  # noqa: S603
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "s")],
        cwd=tmp_path,
        env=tool_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode != 0
    assert "missing.md" in done.stderr


def _test_names(path: Path) -> set[str]:
    """The test functions defined at the top level of a test module."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {
        node.name
        for node in tree.body
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and node.name.startswith("test_")
    }


def test_the_architecture_guide_names_only_existing_tests() -> None:
    """Each ``tests/x.py::test_name`` in docs/architecture.md exists, and every invariant
    names at least one."""
    text = ARCHITECTURE.read_text(encoding="utf-8")
    named = re.findall(r"`(tests/[\w/]+\.py)::(\w+)`", text)
    assert len(named) >= 20
    gone = [f"{f}::{n}" for f, n in named if n not in _test_names(ROOT / f)]
    assert gone == []
    sections = re.split(r"^### ", text.split("## Invariants", 1)[1], flags=re.M)[1:]
    titles = {s.splitlines()[0]: s for s in sections}
    invariants = (
        "Exactly one outcome per input",
        "Never a blind resend",
        "Order within a conversation",
        "Secrets never leave",
    )
    for title in invariants:
        assert "::test_" in titles[title], title


def test_the_user_documents_stay_short() -> None:
    """The README (the package page) is at most 400 lines with a table of contents; the
    maintainer's guide at most 200."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 400
    assert "## Contents" in readme
    assert readme.index("make demo") < readme.index("## Contents")
    assert len(ARCHITECTURE.read_text(encoding="utf-8").splitlines()) <= 200


def test_the_changelog_keeps_an_unreleased_section_and_a_short_first_version() -> None:
    """Keep a Changelog: ``[Unreleased]`` on top for the next changes, and 0.1.0 one list of
    what it offers, at most 80 lines."""
    text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    versions = re.findall(r"^## \[([^\]]+)\]", text, re.M)
    assert versions[:2] == ["Unreleased", "0.1.0"]
    first = text.split("## [0.1.0]", 1)[1].split("\n[Unreleased]:", 1)[0]
    assert len(first.strip().splitlines()) <= 80
    assert "### Fixed" not in first
