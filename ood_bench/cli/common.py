"""What every command of the command line shares: the exit status of a usage error, loading the plugins, and
printing a resolved config as YAML.
"""

from __future__ import annotations

EXIT_USAGE = 2


def load_plugins():
    """Load every plugin (a broken one shows as one warning line: ``ood_bench.cli._one_line_plugin_warnings``)."""
    from ..plugins import get_plugins  # late: only the commands that use plugins import the machinery

    return get_plugins()


def print_config(resolved: dict) -> int:
    """The config a run would use, every default filled in, as YAML a user can save and pass back."""
    import yaml  # late: only --print-config writes YAML

    print(yaml.safe_dump(resolved, sort_keys=False, default_flow_style=False).rstrip())
    return 0
