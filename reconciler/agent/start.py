"""Starting an agent: where its specs come from (a directory, or a git branch kept in the state directory), the
environment it is started for (read before it connects: its account and role decide what it may reach, for as
long as it runs), its events and its write-back branch."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.agent.config import AgentConfig
from reconciler.agent.daemon import Agent
from reconciler.agent.source import DirectorySource, GitSource
from reconciler.agent.tell.events import Events
from reconciler.agent.writeback_branch import BranchWriter
from reconciler.aws.client import Aws
from reconciler.core.errors import ReconcilerError, SpecError
from reconciler.core.statedir import state_dir as default_state_dir
from reconciler.engine.lease import Lease
from reconciler.spec.environments import Environment, environment_file, read_environment


@dataclass(frozen=True)
class Origin:
    """Where an agent's specs come from, and where it keeps what it must remember."""

    specs: Path
    git_url: str | None = None
    git_branch: str = "main"
    state_dir: Path | None = None
    write_back_branch: str | None = None

    def source(self) -> DirectorySource | GitSource:
        if self.git_url and self.specs.is_absolute():
            raise ReconcilerError("with --git-url, SPECS is a path inside the repository (e.g. specs)")
        if self.write_back_branch and not self.git_url:
            raise ReconcilerError("--write-back-branch needs --git-url: the drift is written back as a commit to "
                                  "the spec repository")
        if self.git_url:
            return GitSource(self.git_url, self.git_branch, self.kept(), str(self.specs))
        return DirectorySource(self.specs)

    def kept(self) -> Path:
        return self.state_dir or default_state_dir()


@dataclass(frozen=True)
class Telling:
    """Whom the agent tells: webhooks (signed with `secret`), chat and paging services by apprise URL."""

    webhooks: tuple[str, ...] = ()
    notify: tuple[str, ...] = ()
    secret: str | None = field(default=None, repr=False)


def prepare(origin: Origin) -> tuple[DirectorySource | GitSource, Environment | None]:
    """The agent's spec source and the environment it is started for, its state directory in use from now on
    (its journal and the trimmed models go there too)."""
    if origin.state_dir is not None:
        os.environ["RECONCILER_STATE_DIR"] = str(origin.state_dir)
    source = origin.source()
    return source, environment_at_start(source)


def environment_at_start(source: DirectorySource | GitSource) -> Environment | None:
    """The environment an agent is started for (None: a plain spec directory)."""
    root = source.checkout(source.fetch()) if isinstance(source, GitSource) else source.specs
    found = environment_file(root)
    if found is None:
        return None
    environment, problems = read_environment(found, source.root)
    if environment is None:
        raise SpecError(problems)
    return environment


def make_agent(source: DirectorySource | GitSource, origin: Origin, aws: Aws, config: AgentConfig,
               telling: Telling, lease: Lease | None) -> Agent:
    """The agent, with its events (kept in the state directory) and its write-back branch."""
    writer = (BranchWriter(source, origin.write_back_branch)
              if origin.write_back_branch and isinstance(source, GitSource) else None)
    events = Events(origin.kept(), list(telling.webhooks), telling.secret, notify=list(telling.notify))
    return Agent(source, aws, config, lease=lease, events=events, writer=writer)
