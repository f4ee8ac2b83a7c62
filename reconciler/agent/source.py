"""Where the agent reads its specs: a directory (re-read each cycle) or a git branch.

Git is driven through the `git` CLI rather than a library: it brings the user's own
credential helpers, SSH keys, proxies and protocol support unchanged, and the container
image carries it anyway.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
from pathlib import Path

from ..errors import ReconcilerError
from ..specs import spec_files


class DirectorySource:
    """Specs from a directory; the revision is a hash of the spec files' contents."""

    supports_fallback = False
    root: Path | None = None

    def __init__(self, specs: Path):
        self.specs = specs

    def fetch(self) -> str:
        digest = hashlib.sha256()
        if self.specs.exists():
            for file in spec_files(self.specs):
                digest.update(str(file).encode() + b"\0")
                try:
                    digest.update(file.read_bytes())
                except OSError:
                    digest.update(b"(unreadable)")
        return f"dir:{digest.hexdigest()[:12]}"

    def checkout(self, revision: str) -> Path:
        return self.specs


def redact(url: str) -> str:
    """A URL without the password or token it may carry."""
    return re.sub(r"(//[^/@:]+):[^/@]*@", r"\1:***@", url)


class GitSource:
    """Specs from a branch of a git repository, kept in a local clone and fetched each cycle."""

    supports_fallback = True

    def __init__(self, url: str, branch: str, state_dir: Path, specs_path: str):
        self.url, self.branch, self.specs_path = url, branch, specs_path
        key = hashlib.sha256(f"{url}#{branch}".encode()).hexdigest()[:12]
        self.workdir = state_dir / "git" / key
        self.root: Path | None = self.workdir

    def _git(self, *args: str, cwd: Path | None = None) -> str:
        env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "true"}
        proc = subprocess.run(["git", *args], cwd=cwd or self.workdir, env=env, capture_output=True,
                              text=True, timeout=300)
        if proc.returncode != 0:
            message = redact(proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed")
            raise ReconcilerError(f"git {args[0]} failed for {redact(self.url)} ({self.branch}): {message}")
        return proc.stdout.strip()

    def fetch(self) -> str:
        """Fetch the branch; return the commit it points to."""
        if not (self.workdir / ".git").exists():
            self.workdir.mkdir(parents=True, exist_ok=True)
            self._git("init", "--quiet", str(self.workdir), cwd=self.workdir.parent)
            self._git("remote", "add", "origin", self.url)
        ref = f"refs/remotes/origin/{self.branch}"
        self._git("fetch", "--quiet", "--prune", "--depth", "50", "origin", f"+refs/heads/{self.branch}:{ref}")
        return self._git("rev-parse", ref)

    def checkout(self, revision: str) -> Path:
        """The specs directory as of `revision` (read from git, never from memory)."""
        self._git("checkout", "--quiet", "--force", "--detach", revision)
        self._git("clean", "--quiet", "-fdx")
        return self.workdir / self.specs_path
