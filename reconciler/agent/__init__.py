"""The agent: reconcile cycles on a schedule, from a directory or a git branch."""

from .daemon import Agent, Backoff, CycleResult
from .source import DirectorySource, GitSource

__all__ = ["Agent", "Backoff", "CycleResult", "DirectorySource", "GitSource"]
