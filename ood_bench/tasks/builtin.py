"""The core's own task families, registered through the same hook as plugins."""

from ..hookspecs import hookimpl
from .graph_route import GraphRoute
from .string_program import StringProgram


@hookimpl
def register_tasks(register):
    register(StringProgram())
    register(GraphRoute())
