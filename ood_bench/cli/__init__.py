"""The ``ood-bench`` command line.

Every user mistake surfaces as one line ``ood-bench: error: ...`` and exit status
2; a run interrupted with Ctrl-C says how to resume (rerun the same command).

``main`` is here, with what wraps every command (SIGTERM read like Ctrl-C, one-line plugin warnings, each
failure's line and exit status); the commands are in the modules beside it, by what they do: ``catalog``
(tasks, plugins, algorithms), ``evaluate`` (evaluate, compare, failures), ``train`` (pretrain, posttrain,
sweep, dev-check) and ``run`` (run, calibrate, leaderboard); ``parser`` assembles the command line from them.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import traceback
import warnings

from ..errors import OodBenchError, RunInterrupted
from ..faults import PluginFault
from ..suite.quiet import quiet_third_party as _quiet_third_party
from .common import EXIT_USAGE
from .evaluate import cmd_evaluate
from .parser import build_parser
from .run import cmd_run
from .train import cmd_dev_check, cmd_posttrain, cmd_pretrain


class Terminated(BaseException):
    """SIGTERM outside training (training saves a checkpoint first and raises ``RunInterrupted``). A
    BaseException, like KeyboardInterrupt, so that no ``except Exception`` on its way takes it for a failure
    and carries on (the decode kernel's build did: a SIGTERM during it read as "kernel unavailable", exit 0)."""


# SIGTERM's state in this process: received, and handled (caught by main, or main returned)
_SIGTERM = {"received": False, "handled": False}


def _sigterm_like_ctrl_c():
    """SIGTERM during an evaluation or a comparison ends it like Ctrl-C: one line, exit 143, and the
    evaluation's partial folder left for the next run to clear (Python's default ends silently)."""
    _SIGTERM.update(received=False, handled=False)  # each main() call starts afresh, in any thread
    if threading.current_thread() is not threading.main_thread():
        return None
    if not getattr(sys.unraisablehook, "drops_terminated", False):
        sys.unraisablehook = _unraisable_but_terminated(sys.unraisablehook)

    def stop(signum, frame):
        _SIGTERM["received"] = True
        # Python drops an exception raised while a weakref callback or a __del__ runs ("Exception ignored
        # in ..."), and the command carried on to exit 0 (seen in CI, inside importlib's module-lock callback):
        # until main has handled it, the signal comes again a second later.
        again = threading.Timer(1.0, _send_sigterm_again)
        again.daemon = True
        again.start()
        raise Terminated()

    return signal.signal(signal.SIGTERM, stop)  # the handler it replaced, restored when main returns


def _unraisable_but_terminated(hook):
    """Python's hook for an exception it drops, silent for the dropped ``Terminated`` (the signal comes again,
    and the one line main prints says what happened)."""

    def unraisable(info):
        if not isinstance(info.exc_value, Terminated):
            hook(info)

    unraisable.drops_terminated = True
    return unraisable


def _send_sigterm_again() -> None:
    if not _SIGTERM["handled"]:
        os.kill(os.getpid(), signal.SIGTERM)


def _one_line_plugin_warnings() -> None:
    """A broken plugin, or a LOAD/DISABLE name that matches none, prints one line, whenever the
    plugins are loaded (a pretraining on built-in families never loads them)."""
    from ..plugins import PluginWarning  # late: `import ood_bench.cli` leaves the plugin machinery to main

    shown = warnings.showwarning
    if getattr(shown, "one_line_plugin_warnings", False):
        return

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, PluginWarning):
            print(f"ood-bench: warning: {message}", file=sys.stderr)
        else:
            shown(message, category, filename, lineno, file, line)

    show.one_line_plugin_warnings = True
    warnings.simplefilter("always", PluginWarning)
    warnings.showwarning = show


def main(argv: list[str] | None = None) -> int:
    for stream in (sys.stdout, sys.stderr):  # a terminal that cannot show a path's or a symbol's characters
        if hasattr(stream, "reconfigure"):  # gets them escaped, not a UnicodeEncodeError after the work is done
            stream.reconfigure(errors="backslashreplace")
    _quiet_third_party()
    _one_line_plugin_warnings()
    previous = _sigterm_like_ctrl_c()
    try:
        code = _main(argv)
    finally:
        _SIGTERM["handled"] = True
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    if _SIGTERM["received"] and code == 0:  # the command finished before the signal could stop it
        print("ood-bench: interrupted by SIGTERM after the command had finished its work", file=sys.stderr)
        return 143
    return code


def _main(argv: list[str] | None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # KEY=VALUE overrides may come anywhere, also after options (argparse takes positionals only once)
    stray = [a for a in extra if a.startswith("-") or "=" not in a or not hasattr(args, "overrides")]
    if stray:
        print(f"ood-bench: error: unrecognized arguments: {' '.join(stray)} (see `ood-bench --help`)", file=sys.stderr)
        return EXIT_USAGE
    if extra:
        args.overrides = list(args.overrides or []) + extra
    try:
        if args.func in (cmd_pretrain, cmd_posttrain, cmd_run, cmd_dev_check):
            # late: only the commands that compute read OOD_BENCH_PRECISION and OOD_BENCH_ENGINE
            from ..training.precision import env_precision

            env_precision()  # a bad OOD_BENCH_PRECISION is one line before any compute, used by this config or not
        if args.func in (cmd_pretrain, cmd_posttrain, cmd_run, cmd_evaluate, cmd_dev_check):
            # late: the command line imports what a command needs only when it runs
            from ..model.kernels import decode_kernel, env_engine

            if env_engine() == "kernel":  # also a bad value: one line, before any compute
                decode_kernel()  # built (or found built) now, so a machine that cannot build it fails here
        return args.func(args)
    except RunInterrupted as exc:
        print(f"ood-bench: interrupted by {exc}", file=sys.stderr)
        return exc.exit_code
    except PluginFault as exc:
        if os.environ.get("OOD_BENCH_DEBUG", "") not in ("", "0"):
            traceback.print_exception(exc)  # the plugin's own frames, for its author
        print(f"ood-bench: error: {exc} (OOD_BENCH_DEBUG=1 shows the traceback)", file=sys.stderr)
        return EXIT_USAGE
    except OodBenchError as exc:
        print(f"ood-bench: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("ood-bench: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    except Terminated:
        _SIGTERM["handled"] = True
        print("ood-bench: interrupted by SIGTERM; run the same command again to resume", file=sys.stderr)
        return 143
    except BrokenPipeError:  # the reader went away (`ood-bench tasks | head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except RecursionError:  # a config nested thousands deep
        print("ood-bench: error: the input is nested too deeply to read", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:  # a write that failed mid-run (a full disk): what was written before is intact
        where = f": {exc.filename}" if exc.filename else ""
        print(
            f"ood-bench: error: {exc.strerror or exc}{where} (nothing already written was changed; free the "
            f"space or fix the folder and run the same command again)",
            file=sys.stderr,
        )
        return 1
