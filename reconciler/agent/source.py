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

from reconciler.core.errors import ReconcilerError
from reconciler.spec.environments import environment_file, files_of, read_environment
from reconciler.spec.files import spec_files


class DirectorySource:
    """Specs from a directory; the revision is a hash of the spec files' contents (for an environment, of its
    document and its bases' files)."""

    supports_fallback = False
    root: Path | None = None
    fetch_error: str | None = None

    def __init__(self, specs: Path):
        self.specs = specs

    def fetch(self) -> str:
        digest = hashlib.sha256()
        if self.specs.exists():
            environment = environment_file(self.specs)
            found, _ = read_environment(environment) if environment else (None, [])
            for file in files_of(found) if found else spec_files(self.specs):
                digest.update(str(file).encode() + b"\0")
                try:
                    digest.update(file.read_bytes())
                except OSError:
                    digest.update(b"(unreadable)")
        return f"dir:{digest.hexdigest()[:12]}"

    def checkout(self, revision: str) -> Path:
        return self.specs

    def describe(self, revision: str) -> dict[str, str] | None:
        """A commit's subject and author (git only)."""
        return None


def redact(url: str) -> str:
    """A URL without the password or token it may carry."""
    return re.sub(r"(//[^/@:]+):[^/@]*@", r"\1:***@", url)


def git_error(stderr: str) -> str:
    """What git said went wrong: its `fatal:`/`error:` lines (all of them: the first is often the cause,
    the last a generic 'Could not read from remote repository'), without any credential in a URL."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    said = [line for line in lines if line.startswith(("fatal:", "error:"))] or lines[-1:]
    return redact("; ".join(said)) if said else "failed (git said nothing)"


class GitSource:
    """Specs from a branch of a git repository, kept in a local clone and fetched each cycle."""

    supports_fallback = True
    fetch_error: str | None = None

    def __init__(self, url: str, branch: str, state_dir: Path, specs_path: str):
        self.url, self.branch, self.specs_path = url, branch, specs_path
        key = hashlib.sha256(f"{url}#{branch}".encode()).hexdigest()[:12]
        self.workdir = state_dir / "git" / key
        self.root: Path | None = self.workdir

    def git(self, *args: str, cwd: Path | None = None, input: str | None = None, env: dict[str, str] | None = None,
            branch: str | None = None) -> str:
        """Run git in the clone (never prompting); its output, or a ReconcilerError with git's own words
        naming the remote (without credentials) and `branch` (default: the followed one)."""
        full = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "true", **(env or {})}
        proc = subprocess.run(["git", *args], cwd=cwd or self.workdir, env=full, capture_output=True,
                              text=True, input=input, timeout=300)
        if proc.returncode != 0:
            raise ReconcilerError(f"git {args[0]} failed for {redact(self.url)} ({branch or self.branch}): "
                                  f"{git_error(proc.stderr)}")
        return proc.stdout.strip()

    def fetch(self) -> str:
        """Fetch the branch; return the commit it points to. When the remote cannot be reached, the
        commit last fetched is returned (drift correction goes on) and `fetch_error` says why."""
        if not (self.workdir / ".git").exists():
            self.workdir.mkdir(parents=True, exist_ok=True)
            self.git("init", "--quiet", str(self.workdir), cwd=self.workdir.parent)
            self.git("remote", "add", "origin", self.url)
        ref = f"refs/remotes/origin/{self.branch}"
        try:
            self.git("fetch", "--quiet", "--prune", "--depth", "50", "origin", f"+refs/heads/{self.branch}:{ref}")
        except ReconcilerError as exc:
            self.fetch_error = str(exc)
            try:
                return self.git("rev-parse", "--verify", "--quiet", ref)
            except ReconcilerError:
                raise exc from None  # never fetched: nothing to go on with
        self.fetch_error = None
        return self.git("rev-parse", ref)

    def checkout(self, revision: str) -> Path:
        """The specs directory as of `revision` (read from git, never from memory)."""
        self.git("checkout", "--quiet", "--force", "--detach", revision)
        self.git("clean", "--quiet", "-fdx")
        return self.workdir / self.specs_path

    def describe(self, revision: str) -> dict[str, str] | None:
        """A commit's subject and author, for /status and the page."""
        try:
            subject, author, when = self.git("log", "-1", "--format=%s%n%an%n%aI", revision).split("\n", 2)
        except (ReconcilerError, ValueError):
            return None
        return {"revision": revision, "subject": subject, "author": author, "date": when}
