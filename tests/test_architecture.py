"""The core's dependencies point down: no import cycle, even through imports inside functions, and each part of
the package imports only the parts below it that the design names (``docs/design.md``, section 4); inside
``board/`` and ``cli/``, each module imports only the modules of its part below it."""

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "ood_bench"


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> list[str]:
    if node.level == 0:
        base = node.module or ""
    else:
        anchor = module.split(".") if is_package else module.split(".")[:-1]
        anchor = anchor[: len(anchor) - (node.level - 1)]
        base = ".".join(anchor + ([node.module] if node.module else []))
    # from . import x, from ..pkg import x: x may be a module (kept if it is one, else trimmed to the package)
    return [f"{base}.{a.name}" for a in node.names] + ([base] if node.module else [])


def import_graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):  # every import, top level or inside a function
            targets = []
            if isinstance(node, ast.ImportFrom):
                targets = _resolve(name, path.name == "__init__.py", node)
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            for t in targets:
                while t and t not in modules:
                    t = t.rpartition(".")[0]
                if t and t != name and t != "ood_bench":
                    graph[name].add(t)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                return stack[stack.index(n) :] + [n]
            if n not in state and (found := visit(n)):
                return found
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (found := visit(m)):
            return found
    return None


# Which part of ``ood_bench`` may import which: a subpackage or a top-level module, lowest first. A part imports
# itself and the parts its row names, never one above it (the table itself has no cycle). docs/design.md draws it.
MAY_IMPORT: dict[str, set[str]] = {
    "errors": set(),
    "phases": set(),  # the phase clock: where a process's time goes
    "hookspecs": set(),  # the plugin hooks and API_VERSION
    "palette": set(),
    "config": {"errors"},
    "faults": {"errors"},
    "storage": {"errors", "phases"},
    "model": {"errors", "config"},
    "tasks": {"errors", "faults", "hookspecs", "model"},  # the tokenizer's vocabulary
    "plugins": {"errors", "faults", "hookspecs", "tasks"},
    "data": {"errors", "config", "model", "tasks", "plugins"},
    "evaluation": {"errors", "phases", "config", "storage", "model", "tasks", "plugins", "data"},
    "training": {
        "errors",
        "phases",
        "config",
        "faults",
        "hookspecs",
        "storage",
        "model",
        "tasks",
        "plugins",
        "data",
        "evaluation",
    },
    "suite": {
        *(
            "errors",
            "phases",
            "config",
            "faults",
            "hookspecs",
            "palette",
            "storage",
            "model",
            "tasks",
            "plugins",
            "data",
        ),
        *("evaluation", "training"),
    },
    "board": {"errors", "palette", "storage", "tasks", "evaluation", "suite"},  # no model, no training
    "api": {"errors", "config", "hookspecs", "model", "tasks", "plugins", "training"},
    "cli": {
        *(
            "errors",
            "phases",
            "config",
            "faults",
            "hookspecs",
            "palette",
            "storage",
            "model",
            "tasks",
            "plugins",
            "data",
        ),
        *("evaluation", "training", "suite", "board", "api"),
    },
    "ood_bench": {"hookspecs"},  # the package's __init__: hookimpl for plugin authors
    "__main__": {"cli"},
}


# Inside a part split into modules of one job each, the modules point down too: each imports only the modules of
# its part that its row names (the package's own __init__ is "__init__"). docs/design.md names them.
WITHIN: dict[str, dict[str, set[str]]] = {
    "board": {
        "__init__": set(),
        "board_stats": set(),  # intervals and q-values
        "board_data": set(),  # what the plots and the page draw
        "markdown": set(),
        "records": set(),
        "leaderboard": set(),  # the older boards of evaluation folders
        "board_plots": {"board_data"},
        "verdicts": {"board_stats"},
        "board_page": {"board_stats", "verdicts"},
        "headline": {"board_stats", "records"},
        "control": {"markdown", "records"},
        "calibration": {"headline", "records"},
        "readme": {"board_stats", "calibration", "control", "headline", "markdown", "records"},
        "suite_board": {  # the entry: renders, writes and checks a suite's board
            *("board_data", "board_page", "board_plots", "board_stats", "verdicts"),
            *("records", "headline", "control", "calibration", "readme"),
        },
    },
    "suite": {
        "suite": set(),  # suite files, their grid and keys
        "memory": set(),
        "quiet": set(),
        "eval_run": set(),
        "dev_check": set(),
        "sweep": set(),
        "profile": set(),  # where an invocation's time went, by phase
        "places": {"suite"},  # where runs live, which are finished
        "estimates": {"places", "suite"},  # how long they take
        "runner": {"eval_run", "places", "suite"},  # one run to its record
        "launchers": {"estimates", "memory", "places", "quiet", "runner", "suite"},  # run_suite
        "calibrate": {"eval_run", "memory", "places", "runner", "suite"},
        "__init__": set(),
    },
    "cli": {
        "common": set(),
        "catalog": {"common"},
        "evaluate": {"common"},
        "train": {"common"},
        "run": {"common"},
        "parser": {"common", "catalog", "evaluate", "train", "run"},
        "__init__": {"common", "parser", "catalog", "evaluate", "train", "run"},  # main()
        "__main__": {"__init__"},  # python -m ood_bench.cli
    },
}


def part(module: str) -> str:
    """``ood_bench.storage.atomic`` -> ``storage``; ``ood_bench.cli`` -> ``cli``; ``ood_bench`` -> itself."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def wrong_imports(graph: dict[str, set[str]]) -> list[str]:
    """Every import from one part into another that ``MAY_IMPORT`` does not allow."""
    return sorted(
        f"{m} imports {t}"
        for m, targets in graph.items()
        for t in targets
        if part(t) != part(m) and part(t) not in MAY_IMPORT.get(part(m), set())
    )


def module_in_part(module: str) -> str:
    """``ood_bench.board.records`` -> ``records``; ``ood_bench.cli`` (the package itself) -> ``__init__``."""
    parts = module.split(".")
    return parts[2] if len(parts) > 2 else "__init__"


def wrong_imports_within(graph: dict[str, set[str]]) -> list[str]:
    """Every import between two modules of a part in ``WITHIN`` that its table does not allow."""
    return sorted(
        f"{m} imports {t}"
        for m, targets in graph.items()
        for t in targets
        if part(m) in WITHIN
        and part(t) == part(m)
        and module_in_part(t) not in WITHIN[part(m)].get(module_in_part(m), set())
    )


def test_the_direction_check_catches_an_upward_import():
    assert wrong_imports({"ood_bench.storage.atomic": {"ood_bench.board.verdicts"}}) == [
        "ood_bench.storage.atomic imports ood_bench.board.verdicts"
    ]
    assert (
        wrong_imports({"ood_bench.board.verdicts": {"ood_bench.storage.atomic", "ood_bench.board.board_stats"}}) == []
    )


def test_the_design_table_points_down_and_names_every_part():
    assert find_cycle(MAY_IMPORT) is None
    assert all(allowed <= set(MAY_IMPORT) for allowed in MAY_IMPORT.values())
    assert {part(m) for m in import_graph()} == set(MAY_IMPORT)


def test_each_part_imports_only_what_the_design_allows():
    wrong = wrong_imports(import_graph())
    assert not wrong, "imports the design (MAY_IMPORT, docs/design.md) does not allow:\n" + "\n".join(wrong)


def test_the_check_inside_a_part_catches_an_upward_import():
    assert wrong_imports_within(
        {"ood_bench.board.records": {"ood_bench.board.suite_board"}, "ood_bench.cli.common": {"ood_bench.cli"}}
    ) == ["ood_bench.board.records imports ood_bench.board.suite_board", "ood_bench.cli.common imports ood_bench.cli"]
    assert wrong_imports_within({"ood_bench.board.readme": {"ood_bench.board.records", "ood_bench.storage"}}) == []


def test_the_tables_inside_a_part_point_down_and_name_every_module():
    modules = import_graph()
    for name, table in WITHIN.items():
        assert find_cycle(table) is None, name
        assert all(allowed <= set(table) for allowed in table.values()), name
        assert {module_in_part(m) for m in modules if part(m) == name} == set(table), name


def test_each_module_imports_only_the_modules_below_it_in_its_part():
    wrong = wrong_imports_within(import_graph())
    assert not wrong, "imports inside a part that WITHIN (docs/design.md) does not allow:\n" + "\n".join(wrong)


def test_find_cycle_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_core_has_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, " -> ".join(cycle)


def test_config_is_domain_free_and_the_leaderboard_needs_no_torch():
    graph = import_graph()
    assert graph["ood_bench.config"] <= {"ood_bench.errors"}
    code = "import sys, ood_bench.board.leaderboard, ood_bench.evaluation.support; print('torch' in sys.modules)"
    assert (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PACKAGE.parent).stdout.strip()
        == "False"
    )


def _third_party_imported_at_top() -> list[str]:
    """Every non-ood_bench, non-stdlib module some ood_bench module imports at its top level."""
    names = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Import):
                names |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module)
    return sorted(n for n in names if n.split(".")[0] not in sys.stdlib_module_names and n.split(".")[0] != "ood_bench")


# One process loads the third-party libraries the package imports (torch alone takes seconds), then forks a
# child per ood_bench module, which imports that module and nothing else of ood_bench: the same check as a fresh
# interpreter per module (no module may rely on another having been imported first) at a tenth of the time.
_FORK_EACH = """
import importlib, json, os, sys, traceback
for name in json.loads(sys.argv[1]):
    try:
        importlib.import_module(name)
    except ImportError:
        pass
results = {}
for module in json.loads(sys.argv[2]):
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            importlib.import_module(module)
            code, message = 0, b""
        except BaseException:
            code, message = 1, traceback.format_exc().encode()
        os.write(write, message)
        os._exit(code)
    os.close(write)
    chunks = []
    while chunk := os.read(read, 65536):
        chunks.append(chunk)
    os.close(read)
    _, status = os.waitpid(pid, 0)
    results[module] = "" if os.waitstatus_to_exitcode(status) == 0 else (b"".join(chunks).decode() or "failed")
print(json.dumps(results))
"""

MODULES = sorted(m for m in import_graph() if m != "ood_bench.cli")


@pytest.fixture(scope="module")
def imported_alone() -> dict[str, str]:
    """module -> "" when it imported in a process where no other ood_bench module had been, else the traceback."""
    out = subprocess.run(
        [sys.executable, "-c", _FORK_EACH, json.dumps(_third_party_imported_at_top()), json.dumps(MODULES)],
        capture_output=True,
        text=True,
        cwd=PACKAGE.parent,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("module", MODULES)
def test_each_module_imports_alone(module, imported_alone):
    assert imported_alone[module] == "", imported_alone[module]


def test_the_import_check_catches_a_module_that_needs_another_imported_first(tmp_path):
    """The forked check fails a module whose import works only after another module's (the case it exists for)."""
    pkg = tmp_path / "needy"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("import sys\nVALUE = sys.modules['needy.b'].VALUE\n")
    (pkg / "b.py").write_text("VALUE = 1\n")
    out = subprocess.run(
        [sys.executable, "-c", _FORK_EACH, json.dumps([]), json.dumps(["needy.b", "needy.a"])],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    results = json.loads(out.stdout.strip().splitlines()[-1])
    assert results["needy.b"] == ""
    assert "KeyError" in results["needy.a"]


def test_a_pretraining_config_on_builtin_families_imports_no_plugin():
    """Checking (and running) a pretraining on the built-in families loads no entry point:
    a broken or slow algorithm plugin cannot get in the way of pretraining."""
    code = (
        "import sys; from ood_bench.cli import main; "
        "assert main(['pretrain', '--config', 'quick', '--print-config']) == 0; "
        "from ood_bench.training.pretrain import task_sources; "
        "assert task_sources({'string': 1.0})['string']['distribution'] == 'ood-bench'; "
        "print(sorted(m for m in sys.modules if m.startswith('ood_bench_algorithms')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"


def private_imports() -> list[str]:
    """Every ``from ood_bench.x import _name`` between modules: a module's private names are its own."""
    found = []
    for path in PACKAGE.rglob("*.py"):
        name = _module_name(path)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("ood_bench")):
                found += [
                    f"{name} imports {a.name}" for a in node.names if a.name.startswith("_") and a.name != "__version__"
                ]
    return sorted(found)


def test_no_module_reaches_another_modules_private_names():
    assert private_imports() == []
