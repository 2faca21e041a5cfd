"""The hooks a plugin can implement.

Every hook is callback-style: it receives a ``register`` function and calls it
once per thing it contributes. A plugin therefore never needs to know how the
core stores what it registers, and one plugin can add any number of items.

A plugin is a module (or object) with functions decorated by ``hookimpl``::

    from ood_bench import hookimpl

    @hookimpl
    def register_algorithms(register):
        register(MyAlgorithm)

and an entry point in the ``ood_bench`` group of its ``pyproject.toml``::

    [project.entry-points.ood_bench]
    my_algorithm = "my_package.plugin"
"""

import pluggy

PROJECT = "ood_bench"
# The plugin API's version (``ood_bench.api`` exports it): here, beside the hooks it versions, so that the run
# records below the API can carry it without importing the API itself.
# 1.1: the RL math, parse_completion, TaskFamily.run_program / steps_space; API_VERSION in run records
# 1.2: knob(default, help), the one place a knob's help line comes from (knob_docs reads only that)
API_VERSION = "1.2"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_tasks(register):
    """Register task families: call ``register(family)`` with a ``TaskFamily`` instance.

    The family's ``name`` must be unique across all plugins; its ``version`` keys
    every result computed on it.
    """


@hookspec
def register_algorithms(register):
    """Register post-training algorithms: call ``register(algorithm_class)``.

    The class subclasses ``ood_bench.api.Algorithm``, sets a unique
    ``name`` and a ``config_class`` dataclass whose fields are its knobs.
    """


@hookspec
def register_metrics(register):
    """Register evaluation metrics: call ``register(name, factory)``.

    ``factory(**kwargs)`` returns a ``torchmetrics.Metric`` that is updated
    with per-problem records and whose ``compute()`` gives a number or a dict.
    """
