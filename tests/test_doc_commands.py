"""Every concrete `ood-bench ...` command in the README and docs/ parses with today's CLI.

A renamed flag or command would otherwise leave the docs telling users to type something that ends in
"unrecognized arguments". Lines are taken from fenced code blocks (backslash continuations joined, a
trailing `# comment` dropped); usage synopses with placeholders (`[--n N]`, `BASE`, `a|b`, `...`) are
skipped, since they are not meant to be typed as they stand. Parsing is all this checks: running them
is what the tutorials' own tests and the suites do.
"""

import re
import shlex
from pathlib import Path

import pytest

from ood_bench.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PLACEHOLDER = re.compile(r"\[|\]|\.\.\.|\||\b[A-Z][A-Z_]{2,}\b(?!=)")


def fenced_lines(text: str) -> list[str]:
    lines, inside, pending = [], False, ""
    for raw in text.splitlines():
        if raw.lstrip().startswith("```"):
            inside, pending = not inside, ""
            continue
        if not inside:
            continue
        line = pending + raw.strip()
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        pending = ""
        lines.append(line)
    return lines


def doc_commands() -> list[tuple[str, str]]:
    found = []
    for doc in DOCS:
        for line in fenced_lines(doc.read_text()):
            for part in re.split(r"\s*(?:&&|;)\s*", line):
                part = re.sub(r"^\$\s*", "", part)
                if not part.startswith("ood-bench "):
                    continue
                command = re.sub(r"\s+#.*$", "", part).strip()
                if "<" in command or PLACEHOLDER.search(command.replace("ood-bench", "", 1)):
                    continue
                found.append((doc.relative_to(ROOT).as_posix(), command))
    return found


COMMANDS = doc_commands()


def test_the_docs_hold_commands_to_check():
    # the collector finds the README's main command and the tutorials' (it cannot silently find none)
    assert len(COMMANDS) >= 20
    assert any(c == "ood-bench run quick" for _, c in COMMANDS)


@pytest.mark.parametrize(("doc", "command"), COMMANDS, ids=[f"{d}:{c[:60]}" for d, c in COMMANDS])
def test_a_documented_command_parses(doc, command, capsys):
    argv = shlex.split(command)[1:]
    try:
        # as `ood-bench` reads it: KEY=VALUE overrides may also come after options
        args, extra = build_parser().parse_known_args(argv)
    except SystemExit as exc:
        pytest.fail(f"{doc}: `{command}` does not parse (exit {exc.code}): {capsys.readouterr().err.strip()}")
    stray = [a for a in extra if a.startswith("-") or "=" not in a or not hasattr(args, "overrides")]
    assert not stray, f"{doc}: `{command}`: unrecognized arguments {stray}"
