"""Atomic writes: a file or folder appears under its final name only once it is complete.

Everything is first written to a temporary name in the same folder (so the final `os.replace`
is a rename within one file system, which POSIX makes atomic), then renamed. A reader, or a
rerun that skips finished work, never sees a half-written file. The temporary name keeps the
final extension, so writers that choose a format by extension (Pillow, PyAV, h5py) work
unchanged. Permissions follow the process umask, as for a plain `open(path, "w")`.

Example:
  with atomic_file("out/clip.mp4") as temporary:
      write_video(temporary)            # any writer that takes a path
  write_text("out/ids.txt", "000001\\n")
  with atomic_directory("out/frames/000001.mp4") as folder:
      save_pngs(folder)
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from typing import Any


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _temporary_affixes(path: str) -> tuple[str, str, str]:
    folder, name = os.path.split(os.path.abspath(path))
    # Keras insists on the whole ".weights.h5".
    extension = ".weights.h5" if name.endswith(".weights.h5") else os.path.splitext(name)[1]
    return folder, f".{name}.", f".tmp{extension}"


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[str]:
    """Yields a temporary path beside `path`; renames it over `path` when the block succeeds.

    On an exception the temporary file is removed and `path` is left as it was.
    """
    path = os.fspath(path)
    folder, prefix, suffix = _temporary_affixes(path)
    os.makedirs(folder, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=folder)
    os.close(handle)
    try:
        yield temporary
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(temporary)
        raise


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike) -> Iterator[str]:
    """Yields a temporary folder beside `path`; renames it to `path` when the block succeeds.

    An existing folder at `path` is replaced (removed just before the rename; a folder cannot
    be renamed over a non-empty one). On an exception the temporary folder is removed.
    """
    path = os.fspath(path)
    folder, prefix, suffix = _temporary_affixes(path)
    os.makedirs(folder, exist_ok=True)
    temporary = tempfile.mkdtemp(prefix=prefix, suffix=suffix, dir=folder)
    try:
        yield temporary
        os.chmod(temporary, 0o777 & ~_umask())
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        os.replace(temporary, path)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise


def save_keras(model, path: str | os.PathLike) -> None:
    """Saves a Keras model atomically: the whole model for a `.keras` path, its weights for a
    `.weights.h5` path."""
    path = os.fspath(path)
    with atomic_file(path) as temporary:
        if path.endswith(".keras"):
            model.save(temporary)
        else:
            model.save_weights(temporary)


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Writes `data` to `path` atomically."""
    with atomic_file(path) as temporary, open(temporary, "wb") as stream:
        stream.write(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    """Writes UTF-8 `text` to `path` atomically."""
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, value: Any, indent: int | None = 1) -> None:
    """Writes `value` as JSON (keys in the given order, trailing newline) to `path` atomically."""
    write_text(path, json.dumps(value, indent=indent) + "\n")
