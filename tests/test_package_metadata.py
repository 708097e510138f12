"""The distributions a registry would take: ``twine check`` passes, and the wheel's
metadata publishes only the extras users install, with the project's addresses."""

from __future__ import annotations

import subprocess
import sys
import tarfile
import zipfile
from email.message import Message
from email.parser import Parser
from pathlib import Path

import pytest

from .cli_helpers import ROOT
from .tool_env import tool_env


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The wheel and sdist, built offline with hatchling."""
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(  # noqa: S603 - our own interpreter and fixed arguments
        [sys.executable, "-m", "hatchling", "build", "-t", "wheel", "-t", "sdist", "-d", out],
        cwd=ROOT,
        env=tool_env(),
        check=True,
        capture_output=True,
    )
    return sorted(out.iterdir())


@pytest.mark.process
def test_twine_check_passes(dists: list[Path]) -> None:
    """``twine check --strict`` (what the index checks: the README renders, metadata is
    complete) accepts both distributions."""
    done = subprocess.run(  # noqa: S603
        [sys.executable, "-m", "twine", "check", "--strict", *map(str, dists)],
        env=tool_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("PASSED") == 2, done.stdout


def _metadata(dists: list[Path]) -> Message:
    """The wheel's METADATA."""
    (wheel,) = [d for d in dists if d.suffix == ".whl"]
    with zipfile.ZipFile(wheel) as whl:
        (name,) = [n for n in whl.namelist() if n.endswith(".dist-info/METADATA")]
        return Parser().parsestr(whl.read(name).decode())


@pytest.mark.slow  # the dists fixture builds both with hatchling (a process)
def test_the_wheel_publishes_no_development_extras(dists: list[Path]) -> None:
    """dev, docs and bench are dependency groups, not extras: none is in the wheel's
    metadata, and nothing they pin (opentrain-ai, mypy, mkdocs) is a requirement."""
    meta = _metadata(dists)
    extras = set(meta.get_all("Provides-Extra") or [])
    assert extras == {"cli", "testing", "redis", "speed", "otel", "prometheus"}
    requires = " ".join(meta.get_all("Requires-Dist") or [])
    for pinned in ("opentrain-ai", "mypy", "mkdocs", "ruff", "nox", "twine"):
        assert pinned not in requires
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    groups = pyproject.split("[dependency-groups]", 1)[1].split("\n[", 1)[0]
    assert all(f"\n{name} = [" in groups for name in ("dev", "docs", "bench"))


@pytest.mark.slow  # the dists fixture builds both with hatchling (a process)
def test_the_wheel_names_docs_source_and_changelog(dists: list[Path]) -> None:
    """Project-URL entries for the documentation, the source and the changelog."""
    urls = dict(u.split(", ", 1) for u in _metadata(dists).get_all("Project-URL") or [])
    assert {"Documentation", "Source", "Changelog"} <= set(urls)
    assert all(u.startswith("https://") for u in urls.values())


@pytest.mark.slow  # the dists fixture builds both with hatchling (a process)
def test_classifiers_list_only_the_pythons_ci_runs(dists: list[Path]) -> None:
    """The Python classifiers are exactly the versions the noxfile and .ci/run test."""
    listed = {
        c.rsplit(" :: ", 1)[1]
        for c in _metadata(dists).get_all("Classifier") or []
        if c.startswith("Programming Language :: Python :: 3.")
    }
    noxfile = (ROOT / "noxfile.py").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert listed == {"3.10", "3.11", "3.12", "3.13"}
    assert 'PYTHONS = ["3.10", "3.11", "3.12", "3.13"]' in noxfile
    assert "--error-on-missing-interpreters" in ci
    assert "for v in 3.10 3.11 3.12 3.13" in ci


@pytest.mark.process
def test_the_wheel_and_sdist_ship_the_scripts(dists: list[Path]) -> None:
    """Both distributions carry every ``.lua`` file (without them no Redis call works)."""
    lua = {p.stem for p in (ROOT / "opentrain_async" / "_redis" / "lua").glob("*.lua")}
    assert lua
    (wheel,) = [d for d in dists if d.suffix == ".whl"]
    (sdist,) = [d for d in dists if d.name.endswith(".tar.gz")]
    with zipfile.ZipFile(wheel) as whl:
        in_wheel = {Path(n).stem for n in whl.namelist() if n.endswith(".lua")}
    with tarfile.open(sdist) as tar:
        in_sdist = {Path(n).stem for n in tar.getnames() if n.endswith(".lua")}
    assert in_wheel == in_sdist == lua
