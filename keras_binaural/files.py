"""Writing outputs safely: checked before any work, all-or-nothing, no debris after a crash.

Every tool that writes does three things with its outputs, all from this module:

1. **Before any work**, `check_output` each output path (or folder): the folder exists or can be
   created (no plain file stands in the way), the user may write there, and, where the size is
   knowable, the disk has room. A problem is one line naming the flag, the path and what would
   be right.
2. **Leftovers of an interrupted run** (kill -9, power loss) are removed by
   `remove_temporaries` when the same command runs again. Temporary names are recognisable:
   `.<final name>.<8 random characters>.tmp<final extension>`, hidden, beside the final path
   (`is_temporary`); the readers skip hidden names anyway.
3. **The outputs of one command are all-or-nothing**: each is written to such a temporary name
   in its final folder (so the rename is within one file system, which POSIX makes atomic) and
   renamed to its final name only when every output of the `transaction` succeeded. On an error
   every temporary is removed and the files already there are left as they were. An `OSError`
   while writing (disk full, permission, read-only file system) becomes an `OutputError` whose
   message names the path and says that nothing was written.

The temporary name keeps the final extension, so writers that choose a format by extension
(Pillow, PyAV, h5py, Keras) work unchanged. Permissions follow the process umask, as for a plain
`open(path, "w")`.

Example:
  files.check_output("out/clip.mp4", "--output_video", needed_bytes=2_000_000)
  files.remove_temporaries("out", names=["clip.mp4", "clip.wav"])
  ... the work ...
  with files.transaction() as outputs:
      write_video(outputs.file("out/clip.mp4"))       # any writer that takes a path
      with open(outputs.file("out/clip.wav"), "wb") as stream:
          stream.write(encode_wav(audio))              # not write_wav: it is atomic itself
      save_pngs(outputs.directory("out/frames"))
  files.write_text("out/ids.txt", "000001\\n")          # one file: its own transaction
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from typing import Any

from absl import logging

# `.<final name>.<tempfile's 8 random characters>.tmp[<final extension>]`
_TEMPORARY = re.compile(r"^\.(?P<name>.+)\.[a-z0-9_]{8}\.tmp(\.[^/]*)?$")
# Errors of writing, as opposed to e.g. an input that vanished while it was read.
_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM,
                 errno.ENOTDIR, errno.EISDIR, errno.EEXIST, errno.EIO}
_HINTS = {errno.ENOSPC: "the disk is full: free space or choose another folder",
          errno.EDQUOT: "the disk quota is used up: free space or choose another folder",
          errno.EACCES: "choose a folder you can write",
          errno.EPERM: "choose a folder you can write",
          errno.EROFS: "the file system is read-only: choose another folder"}


class OutputError(OSError):
    """An output that cannot be written; the message names the flag or path, what is wrong and
    what would be right, and says whether anything was written."""


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _temporary_affixes(path: str) -> tuple[str, str, str]:
    folder, name = os.path.split(os.path.abspath(path))
    # Keras insists on the whole ".weights.h5".
    extension = ".weights.h5" if name.endswith(".weights.h5") else os.path.splitext(name)[1]
    return folder, f".{name}.", f".tmp{extension}"


def _size(num_bytes: float) -> str:
    if num_bytes < 1e6:
        return f"{num_bytes / 1e3:.0f} kB"
    return f"{num_bytes / 1e6:.1f} MB" if num_bytes < 1e9 else f"{num_bytes / 1e9:.2f} GB"


# === 1. Checks before any work ===


def check_output(path: str | os.PathLike, flag: str, *, folder: bool = False,
                 needed_bytes: int = 0, error: type[Exception] = OutputError) -> None:
    """Checks that `path` can be written, before any work is done; nothing is created.

    Args:
      path: an output file (or, with `folder`, an output folder).
      flag: how the user gave it, named in the message (e.g. "--output_json").
      folder: `path` is a folder the command writes into (created if missing).
      needed_bytes: about how much the command will write there (0: unknown); the disk must
        have that much free.
      error: the exception type raised (the tool's own, e.g. `EvaluationError`).

    Raises:
      error: one line: "<flag>=<path>: <what is wrong>; <what would be right>".
    """
    path = os.fspath(path)
    where = f"{flag}={path}" if flag else path
    if not path:
        raise error(f"{flag}: empty; give a {'folder' if folder else 'file name'}")
    if folder and os.path.exists(path) and not os.path.isdir(path):
        raise error(f"{where}: is a file; give a folder (new or existing)")
    if not folder and os.path.isdir(path):
        raise error(f"{where}: is a folder; give a file name")
    parent = os.path.abspath(path if folder else os.path.dirname(os.path.abspath(path)))
    existing = parent
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise error(f"{where}: {existing} is a file, so the folder {parent} cannot be created; "
                    "choose another path")
    if not os.access(existing, os.W_OK | os.X_OK):
        action = "write in" if existing == parent else f"create {parent} in"
        if os.statvfs(existing).f_flag & os.ST_RDONLY:
            raise error(f"{where}: read-only file system: cannot {action} {existing}; choose "
                        "another folder")
        raise error(f"{where}: permission denied: cannot {action} {existing}; choose a folder "
                    "you can write")
    if needed_bytes > 0:
        free = shutil.disk_usage(existing).free
        if free < needed_bytes:
            raise error(f"{where}: not enough space: this needs about "
                        f"{_size(needed_bytes)}, {existing} has {_size(free)} free; "
                        "free space or choose another folder")


# === 2. Leftovers of interrupted runs ===


def is_temporary(name: str, of: Iterable[str] | None = None) -> bool:
    """Whether a file name is one of this module's temporary names (of one of the names `of`,
    if given)."""
    match = _TEMPORARY.match(os.path.basename(name))
    if match is None:
        return False
    return of is None or match.group("name") in set(of)


def remove_temporaries(folder: str | os.PathLike, names: Iterable[str] | None = None) -> int:
    """Removes the temporary files and folders an interrupted run left in `folder` (not below).

    Call it at the start of a command for the folders it writes, before any output is opened:
    a run of the same command writing there at the same time is not supported.

    Args:
      names: only the temporaries of these final names (e.g. ["out.wav"]); None: all.

    Returns:
      How many were removed (0 if `folder` does not exist).
    """
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        return 0
    names = None if names is None else [os.path.basename(name) for name in names]
    removed = 0
    for entry in os.listdir(folder):
        if not is_temporary(entry, names):
            continue
        path = os.path.join(folder, entry)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
        removed += 1
    if removed:
        logging.info("removed %d temporary file(s) of an interrupted run in %s", removed, folder)
    return removed


# === 3. All-or-nothing writes ===


class Transaction:
    """The outputs of one command, written under temporary names (`transaction`)."""

    def __init__(self):
        self._targets: list[str] = []  # final paths, in the order they will be renamed
        self._pending: list[tuple[str, str]] = []  # (temporary, final path)

    def file(self, path: str | os.PathLike) -> str:
        """A temporary path beside `path` (its folder created if missing), renamed to `path` on
        commit."""
        path = os.fspath(path)
        self._targets.append(path)
        folder, prefix, suffix = _temporary_affixes(path)
        os.makedirs(folder, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=folder)
        os.close(handle)
        self._pending.append((temporary, path))
        return temporary

    def directory(self, path: str | os.PathLike) -> str:
        """A temporary folder beside `path`, renamed to `path` on commit (replacing a folder
        already there: removed just before the rename, a folder cannot be renamed over a
        non-empty one)."""
        path = os.fspath(path)
        self._targets.append(path)
        folder, prefix, suffix = _temporary_affixes(path)
        os.makedirs(folder, exist_ok=True)
        temporary = tempfile.mkdtemp(prefix=prefix, suffix=suffix, dir=folder)
        self._pending.append((temporary, path))
        return temporary

    def _commit(self) -> None:
        mask = _umask()
        for temporary, path in self._pending:
            is_folder = os.path.isdir(temporary)
            os.chmod(temporary, (0o777 if is_folder else 0o666) & ~mask)
            if is_folder and os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            os.replace(temporary, path)

    def _abort(self) -> None:
        for temporary, _ in self._pending:
            if os.path.isdir(temporary) and not os.path.islink(temporary):
                shutil.rmtree(temporary, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    os.remove(temporary)

    def _describe(self, cause: OSError) -> str:
        culprit = os.fspath(cause.filename) if cause.filename else ""
        named = [path for temporary, path in self._pending if culprit.startswith(temporary)]
        if named or culprit in self._targets:
            where = named[0] if named else culprit
        else:  # the output being written when it failed
            where = self._targets[-1] if self._targets else "the outputs"
        # The errno's own words: libraries put whole reports in strerror (h5py: ten lines).
        reason = os.strerror(cause.errno) if cause.errno else str(cause) or type(cause).__name__
        reason = " ".join(reason.split())
        hint = _HINTS.get(cause.errno)
        return f"{where}: cannot write ({reason}){'; ' + hint if hint else ''}; nothing was written"

    def _is_write_error(self, cause: BaseException) -> bool:
        if not isinstance(cause, OSError) or isinstance(cause, OutputError):
            return False
        culprit = os.fspath(cause.filename) if cause.filename else ""
        ours = culprit in self._targets or any(culprit.startswith(t) for t, _ in self._pending)
        return cause.errno is None or ours or cause.errno in _WRITE_ERRNOS


@contextlib.contextmanager
def transaction() -> Iterator[Transaction]:
    """Outputs that appear together or not at all.

    Yields a `Transaction`; ask it for a temporary path per output (`.file(path)`,
    `.directory(path)`), write there, and when the block ends without an error every temporary
    is renamed to its final path, in the order asked for (so the last one can be the marker of
    a complete set, e.g. a clip's metadata). On an error (or an interrupt) every temporary is
    removed and nothing is renamed.

    Raises:
      OutputError: an `OSError` while writing (disk full, permission denied, ...), naming the
        path and saying that nothing was written. Other errors pass through unchanged.
    """
    outputs = Transaction()
    try:
        yield outputs
        outputs._commit()
    except BaseException as cause:
        outputs._abort()
        if outputs._is_write_error(cause):
            raise OutputError(outputs._describe(cause)) from cause
        raise


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[str]:
    """Yields a temporary path beside `path`; renames it over `path` when the block succeeds.

    On an exception the temporary file is removed and `path` is left as it was (a `transaction`
    of one file).
    """
    with transaction() as outputs:
        yield outputs.file(path)


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike) -> Iterator[str]:
    """Yields a temporary folder beside `path`; renames it to `path` when the block succeeds.

    An existing folder at `path` is replaced. On an exception the temporary folder is removed.
    """
    with transaction() as outputs:
        yield outputs.directory(path)


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
