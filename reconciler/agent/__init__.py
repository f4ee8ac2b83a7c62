"""The agent: a work queue of resource refs, reconciled from a directory or a git branch."""

from .config import AgentConfig
from .daemon import Agent, CycleResult
from .reconcile import Backoff
from .source import DirectorySource, GitSource

__all__ = ["Agent", "AgentConfig", "Backoff", "CycleResult", "DirectorySource", "GitSource"]
