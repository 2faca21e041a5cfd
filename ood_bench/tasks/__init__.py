"""Task families and their registry."""

from .base import AXES, OOD_SPLITS, SPLITS, Problem, Score, TaskFamily, ood_split, parse_completion
from .registry import TaskRegistry

__all__ = [
    "AXES",
    "OOD_SPLITS",
    "SPLITS",
    "Problem",
    "Score",
    "TaskFamily",
    "TaskRegistry",
    "ood_split",
    "parse_completion",
]
