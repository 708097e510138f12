"""Run the test suite on every supported Python: ``nox`` (or ``nox -s tests-3.12``).

Each session installs the project and its ``dev`` dependency group into a fresh
virtualenv and runs pytest; ``make test`` (ruff, mypy --strict) and ``make coverage``
stay the full gate on the default interpreter. Interpreters are pyenv's, found under
``$PYENV_ROOT/versions`` (``~/.pyenv`` by default) before PATH, so ``nox`` needs no
``PYENV_VERSION``; ``.ci/run`` passes ``--error-on-missing-interpreters``, so a missing one
fails the run instead of being skipped.
"""

from __future__ import annotations

import os
from pathlib import Path

import nox

nox.options.sessions = ["tests"]
nox.options.reuse_existing_virtualenvs = True

PYTHONS = ["3.10", "3.11", "3.12", "3.13"]
PYPROJECT = nox.project.load_toml("pyproject.toml")


def _pyenv_bins() -> list[str]:
    """pyenv's ``versions/X.Y.Z/bin`` directories, newest patch release last."""
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    found = [p / "bin" for p in sorted(root.glob("3.*")) if (p / "bin").is_dir()]
    return [str(p) for p in found]


# Put pyenv's interpreters on PATH for nox's lookup of python3.X (pyenv's shims alone
# answer only for the versions PYENV_VERSION names).
os.environ["PATH"] = os.pathsep.join([*reversed(_pyenv_bins()), os.environ.get("PATH", "")])


def _install(session: nox.Session) -> None:
    """The project (editable) and its dev dependency group, with any pip."""
    session.install("-e", ".", *nox.project.dependency_groups(PYPROJECT, "dev"))


# The documentation site is built once, on the default interpreter (`make docs`, and these
# tests in `make test`): on 3.10 pip resolves mkdocstrings 1.0.6 with pymdown-extensions
# 12.3, which crash together (Highlight() missing 'md'), and the site is the same anyway.
DOCS_BUILD = [
    "--deselect",
    "tests/test_docs_site.py::test_the_site_builds_strict_and_documents_every_public_name",
    "--deselect",
    "tests/test_docs_site.py::test_a_broken_link_fails_the_build",
]


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """The whole pytest suite on one interpreter (the docs site build aside)."""
    _install(session)
    session.run("pytest", "-q", "-n", "2", "-p", "no:cacheprovider", *DOCS_BUILD, *session.posargs)


@nox.session(python="3.10")
def oldest_testing(session: nox.Session) -> None:
    """The testing extra's lower bounds (pytest 8.2, pytest-asyncio 0.24) run the kit's tests."""
    _install(session)
    session.install("pytest==8.2.*", "pytest-asyncio==0.24.*")
    session.run("pytest", "-q", "-p", "no:cacheprovider", "tests/test_testing_kit.py")
