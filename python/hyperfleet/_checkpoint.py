"""Checkpoints: a directory of files, as Ray Train's ``Checkpoint``."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from typing import Iterator, Optional, Union

PathLike = Union[str, "os.PathLike[str]"]


class Checkpoint:
    """A directory holding a trial's saved state."""

    def __init__(self, path: PathLike) -> None:
        self.path: str = os.fspath(path)

    @classmethod
    def from_directory(cls, path: PathLike) -> "Checkpoint":
        """A checkpoint of the files in ``path`` (copied into the trial folder when reported)."""
        p = os.fspath(path)
        if not os.path.isdir(p):
            raise ValueError(f"Checkpoint.from_directory: {p!r} is not a directory")
        return cls(p)

    @contextlib.contextmanager
    def as_directory(self) -> Iterator[str]:
        """Yields a local directory with the checkpoint's files (the checkpoint itself; do not modify it)."""
        yield self.path

    def to_directory(self, path: Optional[PathLike] = None) -> str:
        """Copies the checkpoint into ``path`` (a new temporary directory when omitted) and returns it."""
        dest = os.fspath(path) if path is not None else tempfile.mkdtemp(prefix="checkpoint_")
        shutil.copytree(self.path, dest, dirs_exist_ok=True)
        return dest

    def __fspath__(self) -> str:
        return self.path

    def __repr__(self) -> str:
        return f"Checkpoint(path={self.path!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Checkpoint) and other.path == self.path

    def __hash__(self) -> int:
        return hash(self.path)
