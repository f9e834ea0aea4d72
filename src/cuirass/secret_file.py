"""Server-side secrets that live outside the database: an environment variable, else a 0600 file."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def load_or_create(env_var: str, path: Path, n_bytes: int = 32) -> bytes:
    """The secret from `env_var` if set (replicas share it that way), else from `path`, created
    with fresh random bytes and mode 0600 on first use."""
    env = os.environ.get(env_var)
    if env:
        return env.encode()
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process created it first
            return path.read_bytes()
        with os.fdopen(fd, "wb") as fh:
            fh.write(secrets.token_bytes(n_bytes))
    return path.read_bytes()
