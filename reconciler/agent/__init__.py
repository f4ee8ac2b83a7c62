"""The agent: cycles of load -> plan -> apply (enforce resources) -> report."""

from .cycle import CycleResult, run_cycle

__all__ = ["CycleResult", "run_cycle"]
