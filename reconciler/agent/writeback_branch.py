"""The agent's write-back branch: drift it does not correct becomes one reviewable commit in git.

Each cycle the drift of `observe` and paused resources (and of ignored fields, where a spec opts in
with `metadata.writeBack: true`) is written into the spec files as of the followed commit
(reconciler.engine.writeback) and committed on top of it, on BRANCH of the same repository. The commit
is built with git's plumbing in a private index: the agent's checkout, and the followed branch, are
never written. The branch is pushed only when its content would change (the same drift never makes a
second commit; changed drift force-updates the one commit), and deleted once nothing is left to
write back (merged, or the drift is gone). Pushing uses the same git CLI, and so the same
credentials, as fetching.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from reconciler.agent.source import GitSource
from reconciler.core.errors import ReconcilerError
from reconciler.engine.writeback import WriteBack

log = structlog.get_logger()

AUTHOR = ("reconciler", "reconciler@localhost")  # unless GIT_AUTHOR_NAME / GIT_AUTHOR_EMAIL say otherwise


@dataclass
class Published:
    """What the write-back branch holds now, for /status, the page and the logs."""

    branch: str
    state: str                       # pushed | unchanged | deleted | none | error
    commit: str | None = None
    compare_url: str | None = None
    fields: list[dict[str, Any]] | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"branch": self.branch, "state": self.state}
        for key, value in (("commit", self.commit), ("compareUrl", self.compare_url), ("fields", self.fields),
                           ("error", self.error)):
            if value is not None:
                out[key] = value
        return out


def compare_url(git_url: str, base: str, branch: str) -> str | None:
    """The web page comparing `branch` with `base`, for the hosts whose URL scheme is known."""
    match = re.match(r"^(?:https?://(?:[^@/]+@)?|ssh://(?:[^@/]+@)?|[^@/]+@)"
                     r"(github\.com|gitlab\.com|bitbucket\.org)[:/](.+?)(?:\.git)?/?$", git_url)
    if not match:
        return None
    host, repo = match.groups()
    if host == "github.com":
        return f"https://github.com/{repo}/compare/{base}...{branch}?expand=1"
    if host == "gitlab.com":
        return f"https://gitlab.com/{repo}/-/compare/{base}...{branch}"
    return f"https://bitbucket.org/{repo}/branches/compare/{branch}%0D{base}"


def commit_message(result: WriteBack, base: str, followed: str, changed_by: dict[str, str] | None = None) -> str:
    """Subject, why, and one line per field: resource, field, spec -> live, and who changed it if known."""
    refs = sorted({e.ref for e in result.written})
    subject = (f"reconciler: write back drift of {refs[0]}" if len(refs) == 1
               else f"reconciler: write back drift of {len(refs)} resources")
    lines = [subject, "",
             "AWS differs from these specs, and the agent does not correct it (policy observe, paused, or",
             "fields in metadata.ignore with metadata.writeBack: true). Merge this to make the specs say",
             "what is live; close it to keep the specs as they are.", ""]
    for entry in result.written:
        lines.append(f"{entry.ref} {entry.path}: {_short(entry.spec_value)} -> {_short(entry.live_value)}"
                     f" ({entry.file})")
    for ref in refs:
        if changed_by and changed_by.get(ref):
            lines.append(f"{ref} last changed by {changed_by[ref]}")
    skipped = [e for e in result.skipped if not (e.reason or "").startswith("corrected by the agent")]
    if skipped:
        lines += ["", "Not written:"] + [f"{e.ref} {e.path}: {e.reason}" for e in skipped]
    lines += ["", f"Based on {base} of {followed}."]
    return "\n".join(lines) + "\n"


def _short(value: Any) -> str:
    text = "(none)" if value is None else str(value)
    return text if len(text) <= 80 else text[:77] + "..."


class BranchWriter:
    """Keeps BRANCH of the spec repository equal to the followed commit plus the drift written back."""

    def __init__(self, source: GitSource, branch: str):
        if branch == source.branch:
            raise ReconcilerError(f"--write-back-branch {branch}: that is the branch the agent follows; "
                                  "the agent never writes it. Name another branch.")
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._/-]*", branch) or ".." in branch or branch.endswith(
                (".lock", "/")):
            raise ReconcilerError(f"--write-back-branch {branch!r} is not a valid branch name")
        self.source, self.branch = source, branch
        self.ref = f"refs/remotes/origin/{branch}"

    def publish(self, result: WriteBack, base: str, changed_by: dict[str, str] | None = None) -> Published:
        """Push the commit for `result` on top of `base` (or delete the branch when nothing is written)."""
        url = compare_url(self.source.url, self.source.branch, self.branch)
        fields = [e.to_json() for e in result.written]
        old = self._remote_tip()
        if not result.changed_files():
            if old is None:
                return Published(self.branch, "none")
            if not self._is_ours(old):
                return Published(self.branch, "none", error=f"{self.branch} exists and was not made by the agent; "
                                 "left alone")
            self._git("push", "--quiet", f"--force-with-lease=refs/heads/{self.branch}:{old}", "origin",
                      f":refs/heads/{self.branch}")
            log.info("writeback.deleted", branch=self.branch, reason="nothing left to write back")
            return Published(self.branch, "deleted")
        tree = self._tree(base, result)
        if old is not None and self._rev(f"{old}^{{tree}}") == tree and self._rev(f"{old}^") == base:
            return Published(self.branch, "unchanged", old, url, fields)
        if old is not None and not self._is_ours(old):
            raise ReconcilerError(f"{self.branch} exists and was not made by the agent; it is not overwritten "
                                  "(name another --write-back-branch, or delete that branch)")
        commit = self._commit(tree, base, commit_message(result, base, self.source.branch, changed_by))
        self._git("push", "--quiet", f"--force-with-lease=refs/heads/{self.branch}:{old or ''}", "origin",
                  f"{commit}:refs/heads/{self.branch}")
        self._git("update-ref", self.ref, commit)
        log.warning("writeback.pushed", branch=self.branch, commit=commit, fields=len(fields),
                    **({"compare_url": url} if url else {}))
        return Published(self.branch, "pushed", commit, url, fields)

    # ------------------------------------------------------------------ git

    def _git(self, *args: str, input: str | None = None, env: dict[str, str] | None = None) -> str:
        return self.source.git(*args, input=input, env=env, branch=self.branch)

    def _rev(self, name: str) -> str | None:
        try:
            return self._git("rev-parse", "--verify", "--quiet", name) or None
        except ReconcilerError:
            return None

    def _remote_tip(self) -> str | None:
        """The branch's commit on the remote now (fetched), or None when there is no such branch."""
        listed = self._git("ls-remote", "--heads", "origin", f"refs/heads/{self.branch}")
        if not listed:
            self._git("update-ref", "-d", self.ref)
            return None
        tip = listed.split()[0]
        if self._rev(f"{tip}^{{commit}}") is None:
            self._git("fetch", "--quiet", "--depth", "50", "origin", f"+refs/heads/{self.branch}:{self.ref}")
        return tip

    def _is_ours(self, commit: str) -> bool:
        email = os.environ.get("GIT_COMMITTER_EMAIL", AUTHOR[1])
        return self._git("log", "-1", "--format=%ce", commit) == email

    def _tree(self, base: str, result: WriteBack) -> str:
        """The tree of `base` with the written files replaced, built in a private index."""
        with tempfile.TemporaryDirectory() as tmp:
            env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
            self._git("read-tree", base, env=env)
            for path, text in result.changed_files().items():
                name = path.resolve().relative_to(self.source.workdir.resolve()).as_posix()
                blob = self._git("hash-object", "-w", "--stdin", input=text)
                mode = (self._git("ls-tree", base, "--", name).split(" ", 1)[0] or "100644")
                self._git("update-index", "--add", "--cacheinfo", f"{mode},{blob},{name}", env=env)
            return self._git("write-tree", env=env)

    def _commit(self, tree: str, base: str, message: str) -> str:
        env = {"GIT_AUTHOR_NAME": os.environ.get("GIT_AUTHOR_NAME", AUTHOR[0]),
               "GIT_AUTHOR_EMAIL": os.environ.get("GIT_AUTHOR_EMAIL", AUTHOR[1]),
               "GIT_COMMITTER_NAME": os.environ.get("GIT_COMMITTER_NAME", AUTHOR[0]),
               "GIT_COMMITTER_EMAIL": os.environ.get("GIT_COMMITTER_EMAIL", AUTHOR[1])}
        return self._git("commit-tree", tree, "-p", base, "-F", "-", input=message, env=env)
