"""What users install: the wheel and sdist carry the license and honest metadata, and the
command line without its extra explains itself."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import tarfile
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

from .cli_helpers import ROOT, assert_one_line_error, cli_env, run_cli_process
from .tool_env import tool_env


@pytest.mark.process
def test_wheel_and_sdist_carry_the_license_and_metadata(tmp_path: Path) -> None:
    """Both distributions ship the Apache-2.0 LICENSE; the wheel's metadata names it, lists
    3.10-3.13 and a development status, keeps rich out of the base install and offers the
    cli and testing extras."""
    subprocess.run(  # noqa: S603 - our own interpreter and fixed arguments
        [sys.executable, "-m", "hatchling", "build", "-t", "wheel", "-t", "sdist", "-d", tmp_path],
        cwd=ROOT,
        env=tool_env(),
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("*.whl")
    (sdist,) = tmp_path.glob("*.tar.gz")
    license_text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in license_text
    assert "Version 2.0, January 2004" in license_text
    with zipfile.ZipFile(wheel) as whl:
        (meta_name,) = [n for n in whl.namelist() if n.endswith(".dist-info/METADATA")]
        (licensed,) = [n for n in whl.namelist() if n.endswith("licenses/LICENSE")]
        assert whl.read(licensed).decode() == license_text
        meta = Parser().parsestr(whl.read(meta_name).decode())
    with tarfile.open(sdist) as tar:
        names = tar.getnames()
        (packed,) = [n for n in names if n.endswith("/LICENSE")]
        member = tar.extractfile(packed)
        assert member is not None
        assert member.read().decode() == license_text
        assert not any("/.venv/" in n or "/.git/" in n for n in names)
        for doc in ("docs/cli.md", "docs/read-side.md", "CHANGELOG.md", "examples/echo_bot.py"):
            assert any(n.endswith("/" + doc) for n in names), doc
    assert meta["License-Expression"] == "Apache-2.0"
    classifiers = meta.get_all("Classifier") or []
    for version in ("3.10", "3.11", "3.12", "3.13"):
        assert f"Programming Language :: Python :: {version}" in classifiers
    assert any(c.startswith("Development Status :: ") for c in classifiers)
    requires = meta.get_all("Requires-Dist") or []
    base = [r for r in requires if "extra ==" not in r]
    assert not any(r.startswith("rich") for r in base)
    assert any(r.startswith("rich") and "extra == 'cli'" in r for r in requires)
    assert any(r.startswith("pytest-asyncio") and "extra == 'testing'" in r for r in requires)
    assert set(meta.get_all("Provides-Extra") or []) >= {"cli", "testing", "speed"}
    assert meta.get_all("Project-URL")


@pytest.mark.process
async def test_command_line_without_the_cli_extra_says_how_to_install_it(
    tmp_path: Path,
) -> None:
    """With rich missing, the command line is one line naming the extra, exit 3, no
    traceback; the SDK and the testing kit import fine."""
    shadow = tmp_path / "shadow" / "rich"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError(\"No module named 'rich'\")\n")
    env = cli_env(None, tmp_path)
    env["PYTHONPATH"] = f"{shadow.parent}:{ROOT}"
    result = await run_cli_process("send", "conv_1", "hi", env=env)
    assert result.code == 3
    assert_one_line_error(result)
    assert "pip install 'opentrain-async[cli]'" in result.err
    assert result.out == ""
    sdk = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "import opentrain_async, opentrain_async.testing, opentrain_async.testing.pytest_plugin",
        env=env,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(sdk.communicate(), 60)
    assert sdk.returncode == 0, err.decode()  # the SDK and the kit never need rich


@pytest.mark.process
async def test_the_installed_script_runs_the_command_line(tmp_path: Path) -> None:
    """The console script's entry point (opentrain_async.__main__:main) runs the CLI."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "import sys; from opentrain_async.__main__ import main; sys.exit(main())",
        "--version",
        env=cli_env(None, tmp_path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    assert out.decode().startswith("opentrain-async ")


def test_readme_links_work_on_the_package_page() -> None:
    """The README is the package page: every link in it is an absolute address (a relative
    one would point nowhere on the index); the table of contents' #fragments name headings
    of the README itself (on a page without heading anchors they stay on the page)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)]+)\)", readme)
    assert targets
    slugs = {
        re.sub(r"[^a-z0-9 -]", "", heading.lower()).replace(" ", "-")
        for heading in re.findall(r"^#+ (.+)$", readme, re.M)
    }
    fragments = [t for t in targets if t.startswith("#")]
    assert fragments, "the README has a table of contents"
    assert [t for t in fragments if t[1:] not in slugs] == []
    assert [t for t in targets if not t.startswith(("https://", "http://", "#"))] == []
