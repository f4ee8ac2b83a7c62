"""Where the agent keeps what must outlive a process: RECONCILER_STATE_DIR, default ~/.cache/reconciler (its
journal of creations, events, the git clone, trimmed botocore models). Mount it on a volume in a container."""

from __future__ import annotations

import os
from pathlib import Path


def state_dir() -> Path:
    return Path(os.environ.get("RECONCILER_STATE_DIR") or Path.home() / ".cache" / "reconciler")
