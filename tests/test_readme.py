"""Every ```python block of README.md runs, and its opening commands are the real ones.

Blocks written as doctests (``>>>``) have their printed output checked; others are
executed. Blocks that import zarr run in the zarr 2 / zarr 3 sessions (see
``tests/zarr2/test_readme_zarr2.py`` and ``tests/zarr3/test_readme_zarr3.py``, which
reuse the helpers here); this file runs the rest, which need only aiostore. The
"Testing a backend" block is also run the way the README says: pytest on a module
holding it and the README's ``TinyStore``.
"""

from __future__ import annotations

import doctest
import pathlib
import re
import subprocess
import sys
from dataclasses import dataclass

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```\n", re.MULTILINE | re.DOTALL)


@dataclass(frozen=True)
class Block:
    language: str
    code: str
    line: int

    @property
    def needs(self) -> str:
        """Which test session can run this block: "core", "zarr2" or "zarr3"."""
        if "aiostore.zarr3" in self.code:
            return "zarr3"
        if re.search(r"^(>>> )?import (\w+, )*zarr\b", self.code, re.MULTILINE):
            return "zarr2"
        return "core"

    def __str__(self) -> str:
        return f"README.md:{self.line}"


def readme_blocks(language: str | None = None) -> list[Block]:
    text = README.read_text(encoding="utf-8")
    blocks = []
    for match in FENCE.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        blocks.append(Block(match.group(1), match.group(2), line))
    return [b for b in blocks if language is None or b.language == language]


def python_blocks(needs: str) -> list[Block]:
    return [b for b in readme_blocks("python") if b.needs == needs]


def run_block(block: Block) -> None:
    """Run one README block in a fresh namespace; doctest blocks check their output."""
    globs: dict[str, object] = {"__name__": "__readme__"}
    if not block.code.lstrip().startswith(">>>"):
        exec(compile(block.code, str(block), "exec"), globs)
        return
    test = doctest.DocTestParser().get_doctest(block.code, globs, str(block), str(README), block.line)
    report: list[str] = []
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    result = runner.run(test, out=report.append, clear_globs=True)
    assert result.attempted > 0 and result.failed == 0, "".join(report)


@pytest.mark.parametrize("block", python_blocks("core"), ids=str)
def test_core_block(block: Block, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    run_block(block)


def test_the_readme_backend_passes_the_conformance_suite(tmp_path: pathlib.Path) -> None:
    # The "Testing a backend" block, run as the README says: pytest on a module that
    # holds it and the TinyStore of the block before it.
    blocks = readme_blocks("python")
    [tiny] = [b for b in blocks if "class TinyStore(Store)" in b.code]
    [suite] = [b for b in blocks if "StoreTests" in b.code]
    assert not suite.code.lstrip().startswith(">>>")  # a module, not a doctest
    definitions = [
        example.source
        for example in doctest.DocTestParser().get_examples(tiny.code)
        if example.source.startswith(("import ", "from ", "class "))
    ]
    assert any(source.startswith("class TinyStore") for source in definitions)
    module = tmp_path / "test_tinystore.py"
    module.write_text("\n".join([*definitions, suite.code]), encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider", module.name],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]
    summary = result.stdout.strip().splitlines()[-1]
    passed = int(re.search(r"(\d+) passed", summary).group(1))  # type: ignore[union-attr]
    assert passed >= 60 and "failed" not in summary and "error" not in summary, summary
    for backend in ("asyncio", "trio"):
        assert re.search(rf"::test_get_and_set\[{backend}\] PASSED", result.stdout), backend
    assert re.search(r"::test_sync_mutable_mapping PASSED", result.stdout)


def test_every_python_block_is_run_somewhere() -> None:
    # Each session's file picks its own blocks; a block no session picks would go untested.
    blocks = readme_blocks("python")
    assert {b.needs for b in blocks} == {"core", "zarr2", "zarr3"}
    assert all(b.code.strip() for b in blocks)
    assert not readme_blocks("py") and not readme_blocks("python3")  # would be skipped silently


def test_readme_opens_with_the_two_commands() -> None:
    first = readme_blocks()[0]
    assert first.language == "sh"
    commands = [line.split("#")[0].strip() for line in first.code.splitlines()]
    assert commands == [
        "pip install -e '.[cli,zarr2]' && python examples/main_job.py",
        "pip install nox && nox",
    ]
    assert (ROOT / "examples" / "main_job.py").is_file()


def test_ci_runs_exactly_the_readme_test_command() -> None:
    test_command = readme_blocks()[0].code.splitlines()[1].split("#")[0].strip()
    script = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    lines = [
        line.strip() for line in script.splitlines() if line.strip() and not line.lstrip().startswith("#")
    ]
    assert test_command in lines
    assert "set -euo pipefail" in lines
