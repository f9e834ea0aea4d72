"""Server-side secrets that live outside the database: an environment variable, else a 0600 file.

Also the rule for the data directory that holds them (and the database, which holds full prompts):
created 0700, and files Cuirass writes there readable by their owner only.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def private_dir(path: Path) -> None:
    """Create `path` (and its parents) if missing; the directory itself is made owner-only (0700).
    An existing directory keeps its mode: it was chosen by whoever made it."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)


def owner_only(path: Path) -> None:
    """Make an existing file of ours 0600 if it is readable or writable by anyone else (e.g. made by an
    older version, or under a lax umask)."""
    try:
        mode = path.stat().st_mode
        if mode & 0o077:
            os.chmod(path, 0o600)
    except FileNotFoundError:
        pass


def load_or_create(env_var: str, path: Path, n_bytes: int = 32) -> bytes:
    """The secret from `env_var` if set (replicas share it that way), else from `path`, created
    with fresh random bytes and mode 0600 on first use."""
    env = os.environ.get(env_var)
    if env:
        return env.encode()
    if not path.exists():
        private_dir(path.parent)
        # Written whole under a temporary name, then linked into place: a process starting at the same
        # moment sees either no file or the complete secret, never an empty one.
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(secrets.token_bytes(n_bytes))
            try:
                os.link(tmp, path)
            except FileExistsError:  # another process created it first: use theirs
                pass
            except OSError:  # a file system without hard links: a rename, unless one appeared meanwhile
                if not path.exists():
                    os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    owner_only(path)
    return path.read_bytes()
