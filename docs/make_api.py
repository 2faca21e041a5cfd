"""Write docs/api.md from the docstrings of what ``ood_bench.api`` exports.

Run ``python docs/make_api.py`` after changing the API; ``tests/test_api.py`` fails while the page is stale.
"""

from __future__ import annotations

import inspect
import re
import sys
from pathlib import Path

PAGE = Path(__file__).with_name("api.md")


def _signature(obj) -> str:
    try:
        sig = str(inspect.signature(obj))
    except (TypeError, ValueError):
        return ""
    sig = re.sub(r" at 0x[0-9a-f]+", "", sig)  # a default function's address changes every run
    # annotations are strings (``from __future__ import annotations``): show them unquoted
    sig = re.sub(r"ForwardRef\('([^']*)'\)", r"\1", sig)
    sig = re.sub(r"(: |-> )\"([^\"]*)\"", lambda m: m.group(1) + m.group(2).replace("'", ""), sig)
    return re.sub(r"(: |-> )'([^']*)'", r"\1\2", sig)


def _methods(cls) -> list[str]:
    """The public methods a class itself defines and documents (not what it inherits)."""
    out = []
    for name, member in vars(cls).items():
        func = member.fget if isinstance(member, property) else member
        if name.startswith("_") or not callable(func) or not func.__doc__:
            continue
        sig = "" if isinstance(member, property) else _signature(func).replace("(self, ", "(").replace("(self)", "()")
        doc = inspect.getdoc(func).split("\n\n")[0].replace("\n", " ")
        out.append(f"- `{name}{sig}`: {doc}")
    return out


def render() -> str:
    import ood_bench.api as api

    lines = [
        f"# Plugin API reference (`ood_bench.api` {api.API_VERSION})",
        "",
        "Generated from the docstrings by `python docs/make_api.py`; do not edit by hand.",
        "A plugin imports only these names, from `ood_bench.api`.",
        "",
        "When a plugin's hook raises (a NaN loss included) or returns the wrong type during a run, the run",
        "ends with one line naming the plugin, the hook and the error, exit status 2, and removes what it",
        "wrote before its first checkpoint; `OOD_BENCH_DEBUG=1` shows the traceback.",
        "",
    ]
    for name in api.__all__:
        obj = getattr(api, name)
        lines.append(f"## `{name}`")
        lines.append("")
        if name in api.CONSTANT_DOCS:
            lines += [api.CONSTANT_DOCS[name], ""]
            continue
        if getattr(obj, "__name__", name) != name:  # an alias
            lines += [f"The same object as `{obj.__name__}` (its name before API 1.0).", ""]
            continue
        kind = "class" if inspect.isclass(obj) else "def"
        lines += ["```python", f"{kind} {name}{_signature(obj)}", "```", "", inspect.getdoc(obj) or "", ""]
        if inspect.isclass(obj):
            methods = _methods(obj)
            if methods:
                lines += ["Methods:", "", *methods, ""]
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    PAGE.write_text(render())
    print(f"wrote {PAGE}")
