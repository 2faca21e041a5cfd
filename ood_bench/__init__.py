"""ood-bench: does post-training take a model beyond its pretraining support?"""

__version__ = "0.1.0"

from .hookspecs import hookimpl  # noqa: E402  re-exported for plugin authors

__all__ = ["__version__", "hookimpl"]
