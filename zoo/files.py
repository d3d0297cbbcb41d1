"""Writing model and export directories so that a crash never leaves a half-written one.

Everything is written into a staging directory beside the destination and renamed into place
at the end. Replacing an existing directory renames the old one aside first and deletes it
only after the new one is in place, so at every moment either the old or the new directory is
complete (a crash between the two renames leaves the old one as ``.NAME.old-*`` beside it).

Pure Python: used by ``zoo.models``, ``zoo.export`` and the CLI.

Example:
    >>> import os, tempfile
    >>> root = tempfile.mkdtemp()
    >>> with staged_directory(os.path.join(root, "out")) as tmp:
    ...     _ = open(os.path.join(tmp, "zoo.json"), "w").write("{}")
    >>> os.listdir(os.path.join(root, "out"))
    ['zoo.json']
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile

#: A directory holding one of these was written by zoo and may be replaced with overwrite.
MARKERS = ("zoo.json", "translator.json", "manifest.json")
#: A training run's settings, written when it starts: its directory holds a run of zoo's.
RUN_MARKER = os.path.join("checkpoints", "run.json")


def unfinished_run(path: str) -> bool:
    """True when ``path`` holds a training run's checkpoints but no finished model."""
    return os.path.isfile(os.path.join(path, RUN_MARKER)) and not any(
        os.path.exists(os.path.join(path, m)) for m in MARKERS)


def write_atomically(path: str, write) -> str:
    """Calls ``write(fileobj)`` on a temporary file beside ``path``, flushes it to disk and
    renames it to ``path``: a crash leaves the old file or the new one, never a part (and a
    ``PATH.tmp-PID`` file at most). The directory is synced so the rename survives a power
    cut."""
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    try:
        fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass
    return path


def write_file_atomically(path: str, data: bytes) -> str:
    """:func:`write_atomically` of ``data``."""
    return write_atomically(path, lambda f: f.write(data))


class OutputExistsError(FileExistsError):
    """The destination exists and may not be replaced."""


def check_destination(path: str, overwrite: bool = False, what: str = "output") -> None:
    """Raises :class:`OutputExistsError` unless ``path`` may be written.

    ``path`` may be written when it does not exist, is an empty directory, or (with
    ``overwrite``) is a directory that zoo wrote (it holds ``zoo.json`` or ``manifest.json``).
    A file, or a directory of other things, is never replaced.

    Args:
        path: The destination directory.
        overwrite: Replace a directory that zoo wrote.
        what: The destination's role in messages (``"--out"``).
    """
    if not os.path.lexists(path):
        return
    if not os.path.isdir(path):
        raise OutputExistsError(f"{what} {path} exists and is not a directory")
    entries = os.listdir(path)
    if not entries:
        return
    if not overwrite:
        if unfinished_run(path):
            raise OutputExistsError(
                f"{what} {path} holds the checkpoints of an unfinished training run; resume "
                f"it (--resume) or pass overwrite (--overwrite) to start again")
        raise OutputExistsError(f"{what} {path} is not empty; choose another directory or "
                                f"pass overwrite (--overwrite) to replace it")
    if not any(m in entries for m in MARKERS) and not unfinished_run(path):
        raise OutputExistsError(f"{what} {path} holds files that zoo did not write (no "
                                f"zoo.json or manifest.json); refusing to replace it")


@contextlib.contextmanager
def staged_directory(path: str, overwrite: bool = False, what: str = "output",
                     carry=()):
    """Yields a staging directory that becomes ``path`` when the block ends without error.

    Args:
        path: The destination directory.
        overwrite: Replace ``path`` if zoo wrote it (see :func:`check_destination`).
        what: The destination's role in messages.
        carry: Entries of the old ``path`` moved into the new one after the swap (a run's
            ``checkpoints`` and ``logs``), unless the new one has its own.

    Yields:
        The staging directory to write into (beside ``path``, on the same file system).
    """
    path = os.path.abspath(os.fspath(path))
    check_destination(path, overwrite, what)
    parent, name = os.path.split(path)
    try:
        os.makedirs(parent, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=f".{name}.tmp-", dir=parent)
    except OSError as err:
        raise OutputExistsError(f"{what} {path}: cannot create it ({err.strerror})") from None
    try:
        yield tmp
        check_destination(path, overwrite, what)  # nothing appeared there meanwhile
        if os.path.lexists(path):
            old = tempfile.mkdtemp(prefix=f".{name}.old-", dir=parent)
            os.rmdir(old)
            os.rename(path, old)
            os.rename(tmp, path)
            for entry in carry:
                src, dst = os.path.join(old, entry), os.path.join(path, entry)
                if os.path.lexists(src) and not os.path.lexists(dst):
                    os.rename(src, dst)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
