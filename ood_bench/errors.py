"""One exception type for every kind of bad input.

The CLI turns an ``OodBenchError`` into a one-line message and exit status 2, so
anything a user can get wrong (a name, a config value, a file) raises this rather
than a bare ValueError that would surface as a traceback.
"""

import signal


class OodBenchError(Exception):
    """Bad input from the user: unknown name, invalid value, unreadable file."""


class ConfigError(OodBenchError):
    """A configuration value is out of range or of the wrong type (raised by ``check``).

    The CLI prints it as one line and exits 2.

    Example::

        raise ConfigError("invalid config value algo.mode='x': choose from a, b")
    """


class NonFiniteError(OodBenchError):
    """Training produced a NaN or an infinity: the run stops before anything non-finite is saved."""


class RunInterrupted(Exception):
    """SIGINT or SIGTERM arrived during training; a resumable checkpoint was saved first."""

    def __init__(self, signum: int, step: int, checkpoint) -> None:
        self.signum, self.step, self.checkpoint = signum, step, checkpoint

        name = signal.Signals(signum).name
        super().__init__(f"{name} at step {step}: saved {checkpoint}; run the same command again to resume")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum  # what a shell reports for a process ended by that signal (130, 143)
