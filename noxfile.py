"""Run the test suite on every supported Python: ``nox`` (or ``nox -s tests-3.12``).

Each session installs the project with its dev extra into a fresh virtualenv and runs
pytest; ``make test`` stays the one full gate (ruff, mypy --strict, coverage) on the
default interpreter. Interpreters are found on PATH (e.g. pyenv's python3.10 shims).
"""

from __future__ import annotations

import nox

nox.options.sessions = ["tests"]
nox.options.reuse_existing_virtualenvs = True

PYTHONS = ["3.10", "3.11", "3.12", "3.13"]


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """The whole pytest suite on one interpreter."""
    session.install("-e", ".[dev]")
    session.run("pytest", "-q", "-p", "no:cacheprovider", *session.posargs)


@nox.session(python="3.10")
def oldest_testing(session: nox.Session) -> None:
    """The testing extra's lower bounds (pytest 8.2, pytest-asyncio 0.24) run the kit's tests."""
    session.install("-e", ".[dev]")
    session.install("pytest==8.2.*", "pytest-asyncio==0.24.*")
    session.run("pytest", "-q", "-p", "no:cacheprovider", "tests/test_testing_kit.py")
