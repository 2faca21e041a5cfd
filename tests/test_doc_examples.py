"""Every code block the docs mark as runnable runs, as written, and succeeds.

A block is marked by an HTML comment, ``<!-- runnable -->``, on the line before its fence (invisible on
GitHub). The python blocks of one file run in order as one script (a tutorial's second block uses the
classes its first defines); each line of a bash block is one ``ood-bench`` command, run as
``python -m ood_bench`` at the repository root, and must exit 0. The commands chosen for marking read the
committed folders or post-train the committed smoke base in a temporary folder, so a run leaves nothing
behind. ``test_doc_commands.py`` checks that every other documented command still parses.
"""

import os
import re
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
MARK = "<!-- runnable -->"


def runnable_blocks(text: str) -> list[tuple[str, str]]:
    """(language, code) of each marked block, dedented (a block inside a list item is indented)."""
    lines, found = text.splitlines(), []
    for i, line in enumerate(lines):
        if line.strip() != MARK:
            continue
        fence = lines[i + 1].strip()
        assert fence.startswith("```"), f"{MARK} on line {i + 1} is not right above a fence"
        end = next(j for j in range(i + 2, len(lines)) if lines[j].strip() == "```")
        found.append((fence[3:].strip(), textwrap.dedent("\n".join(lines[i + 2 : end]))))
    return found


BLOCKS = {doc.relative_to(ROOT).as_posix(): runnable_blocks(doc.read_text()) for doc in DOCS}
MARKED = sorted(name for name, blocks in BLOCKS.items() if blocks)


def _env() -> dict:
    # the package and the built-in plugins from this checkout, whatever an editable install elsewhere says
    path = os.pathsep.join([str(ROOT), str(ROOT / "plugins"), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1"}


def test_the_docs_mark_blocks_to_run():
    # the README's plugin, the algorithm tutorial's two blocks and the commands' first look (never silently none)
    assert {"README.md", "docs/writing-an-algorithm.md", "docs/commands.md"} <= set(MARKED)
    assert all(lang in ("python", "bash") for blocks in BLOCKS.values() for lang, _ in blocks)


def test_the_collector_dedents_a_block_inside_a_list_and_refuses_a_stray_mark():
    text = "1. Step:\n\n   <!-- runnable -->\n   ```python\n   x = 1\n   ```\n"
    assert runnable_blocks(text) == [("python", "x = 1")]
    with pytest.raises(AssertionError, match="not right above a fence"):
        runnable_blocks("<!-- runnable -->\ntext\n")


@pytest.mark.parametrize("doc", MARKED)
def test_each_marked_block_runs(doc, tmp_path):
    blocks = BLOCKS[doc]
    script = "\n\n".join(code for lang, code in blocks if lang == "python")
    if script:
        out = subprocess.run(
            [sys.executable, "-c", script], cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=600
        )
        assert out.returncode == 0, f"{doc}'s python blocks failed:\n{out.stderr[-3000:]}"
    for lang, code in blocks:
        if lang != "bash":
            continue
        for line in code.splitlines():
            command = re.sub(r"\s+#.*$", "", line).strip()
            if not command:
                continue
            assert command.startswith("ood-bench "), f"{doc}: a runnable bash line that is not ood-bench: {line}"
            args = shlex.split(command)[1:]
            out = subprocess.run(
                [sys.executable, "-m", "ood_bench", *args],
                cwd=ROOT,
                env=_env(),
                capture_output=True,
                text=True,
                timeout=600,
            )
            assert out.returncode == 0, f"{doc}: `{command}` exited {out.returncode}:\n{out.stderr[-3000:]}"
