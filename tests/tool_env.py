"""The environment for a development tool run as a subprocess (mkdocs, hatchling, twine).

``make coverage`` measures coverage in subprocesses too (``patch = ["subprocess"]`` in
pyproject.toml): every Python child that inherits ``COVERAGE_PROCESS_CONFIG`` traces
itself.  A tool runs none of the package's code worth measuring, and traced it takes
about twice the CPU (the site build: 7.3 s of CPU instead of 3.6 s), so it runs untraced.
"""

from __future__ import annotations

import os

__all__ = ["tool_env"]


def tool_env() -> dict[str, str]:
    """This process's environment without coverage's subprocess hook."""
    return {k: v for k, v in os.environ.items() if k != "COVERAGE_PROCESS_CONFIG"}
