"""The agent: a work queue of resource refs, reconciled from a directory or a git branch."""

from reconciler.agent.backoff import Backoff
from reconciler.agent.config import AgentConfig
from reconciler.agent.daemon import Agent, CycleResult
from reconciler.agent.source import DirectorySource, GitSource

__all__ = ["Agent", "AgentConfig", "Backoff", "CycleResult", "DirectorySource", "GitSource"]
