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
    >>> sorted(os.listdir(os.path.join(root, "out")))  # and the list of what zoo wrote
    ['.zoo-written.json', 'zoo.json']
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile

#: A directory holding one of these was written by zoo and may be replaced with overwrite.
MARKERS = ("zoo.json", "translator.json", "manifest.json")
#: What kind of directory each marker makes: ``--overwrite`` replaces only the same kind.
KINDS = {"zoo.json": "model", "translator.json": "model", "manifest.json": "export"}
#: A training run's settings, written when it starts: its directory holds a run of zoo's.
RUN_MARKER = os.path.join("checkpoints", "run.json")
#: The list of what zoo wrote into a directory (its kind and top-level entries).
WRITTEN = ".zoo-written.json"
#: Entries a model directory gets after it is written (the run's, the CLI's heat map).
_ADDED_LATER = {"model": ("checkpoints", "logs", "attention.png")}


def kind_of(path: str):
    """``"model"`` or ``"export"`` for a directory zoo wrote (or a training run), else None."""
    written = _written(path)
    if written:
        return written["kind"]
    for marker, kind in KINDS.items():
        if os.path.exists(os.path.join(path, marker)):
            return kind
    return "model" if os.path.isfile(os.path.join(path, RUN_MARKER)) else None


def _written(path: str):
    import json

    try:
        with open(os.path.join(path, WRITTEN), encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def foreign_entries(path: str, kind: str):
    """The entries of a zoo directory that zoo did not write there (a user's files)."""
    written = _written(path)
    if written is None:  # written by a zoo before the list existed: nothing to compare
        return []
    ours = set(written["entries"]) | set(_ADDED_LATER.get(kind, ())) | {WRITTEN}
    return sorted(e for e in os.listdir(path) if e not in ours and not e.startswith(".zoo-"))


def unfinished_run(path: str) -> bool:
    """True when ``path`` holds a training run's checkpoints but no finished model."""
    return os.path.isfile(os.path.join(path, RUN_MARKER)) and not any(
        os.path.exists(os.path.join(path, m)) for m in MARKERS)


def failed_start(path: str) -> bool:
    """True when ``path`` holds only what a training run writes when it starts (its settings
    and tokenizer, maybe logs) and no checkpoint: it failed before its first one, so there
    is nothing to resume and nothing to keep."""
    ckpt = os.path.join(path, "checkpoints")
    return unfinished_run(path) and not any(
        f.startswith("ckpt-") for f in os.listdir(ckpt)) and set(os.listdir(path)) <= {
        "checkpoints", "logs", WRITTEN}


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


def check_destination(path: str, overwrite: bool = False, what: str = "output",
                      kind: str = "model") -> None:
    """Raises :class:`OutputExistsError` unless ``path`` may be written.

    ``path`` may be written when it does not exist, is an empty directory, or (with
    ``overwrite``) is a directory that zoo wrote of the same ``kind`` (a model replaces a
    model or a training run, an export an export) holding nothing zoo did not write there.
    A file, a directory of another kind, or one with a user's files is never replaced.

    Args:
        path: The destination directory.
        overwrite: Replace a directory that zoo wrote.
        what: The destination's role in messages (``"--out"``).
        kind: ``"model"`` or ``"export"``: what is about to be written.
    """
    if not os.path.lexists(path):
        return
    if not os.path.isdir(path):
        raise OutputExistsError(f"{what} {path} exists and is not a directory")
    entries = os.listdir(path)
    if not entries or (kind == "model" and failed_start(path)):
        return
    if not overwrite:
        if unfinished_run(path):
            raise OutputExistsError(
                f"{what} {path} holds the checkpoints of an unfinished training run; resume "
                f"it (--resume) or pass overwrite (--overwrite) to start again")
        raise OutputExistsError(f"{what} {path} is not empty; choose another directory or "
                                f"pass overwrite (--overwrite) to replace it")
    found = kind_of(path)
    if found is None:
        raise OutputExistsError(f"{what} {path} holds files that zoo did not write (no "
                                f"zoo.json or manifest.json); refusing to replace it")
    if found != kind:
        article = "an" if kind == "export" else "a"
        raise OutputExistsError(f"{what} {path} holds a zoo {found}, not {article} {kind}; "
                                f"--overwrite replaces only {article} {kind}: choose another "
                                f"directory")
    foreign = foreign_entries(path, kind)
    if foreign:
        raise OutputExistsError(f"{what} {path} holds files that zoo did not write "
                                f"({', '.join(foreign[:5])}); move them away or choose another "
                                f"directory")


@contextlib.contextmanager
def staged_directory(path: str, overwrite: bool = False, what: str = "output",
                     carry=(), kind: str = "model"):
    """Yields a staging directory that becomes ``path`` when the block ends without error.

    Args:
        path: The destination directory.
        overwrite: Replace ``path`` if zoo wrote it (see :func:`check_destination`).
        what: The destination's role in messages.
        kind: ``"model"`` or ``"export"`` (see :func:`check_destination`); recorded with the
            entries written, so a later overwrite knows which files are zoo's.
        carry: Entries of the old ``path`` moved into the new one after the swap (a run's
            ``checkpoints`` and ``logs``), unless the new one has its own.

    Yields:
        The staging directory to write into (beside ``path``, on the same file system).
    """
    path = os.path.abspath(os.fspath(path))
    with directory_lock(path, what):
        with _staged(path, overwrite, what, carry, kind) as tmp:
            yield tmp


@contextlib.contextmanager
def _staged(path, overwrite, what, carry, kind):
    check_destination(path, overwrite, what, kind)
    parent, name = os.path.split(path)
    _remove_debris(parent, name)
    try:
        os.makedirs(parent, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=f".{name}.tmp-", dir=parent)
        follow_umask(tmp)
    except OSError as err:
        raise OutputExistsError(f"{what} {path}: cannot create it ({err.strerror})") from None
    try:
        yield tmp
        _record(tmp, kind, carry)
        check_destination(path, overwrite, what, kind)  # nothing appeared there meanwhile
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


def _record(directory: str, kind: str, carry=()) -> None:
    """Writes :data:`WRITTEN`: the kind and the entries zoo wrote (and will carry over)."""
    import json

    entries = sorted(set(os.listdir(directory)) | set(carry))
    with open(os.path.join(directory, WRITTEN), "w", encoding="utf-8") as f:
        json.dump({"kind": kind, "entries": entries}, f)


class OutputLockedError(OutputExistsError):
    """Another process is writing the destination."""


_HELD = {}  # lock path -> [fd, depth]: this process's locks (re-entrant within it)


@contextlib.contextmanager
def directory_lock(path: str, what: str = "output"):
    """Holds the right to write ``path``: a second writer (another process) is refused.

    The lock is an ``flock`` on a hidden file beside ``path``; the kernel drops it when the
    holder exits, so a crashed or killed writer never leaves it stuck. Within one process it
    is re-entrant.

    Args:
        path: The directory about to be written.
        what: Its role in messages (``"--out"``).

    Raises:
        OutputLockedError: Another process holds it (the message gives its pid).
    """
    import fcntl

    parent, name = os.path.split(os.path.abspath(os.fspath(path)))
    _make_parent(parent, path, what)
    lock = os.path.join(parent, f".{name}.zoo-lock")
    if lock in _HELD:
        _HELD[lock][1] += 1
        try:
            yield
        finally:
            _HELD[lock][1] -= 1
        return
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise OutputLockedError(f"{what} {os.path.join(parent, name)} is being written by "
                                    f"another zoo process (pid {holder}); wait for it to end "
                                    f"or choose another directory") from None
        try:  # the previous holder may have removed the file between our open and lock
            same = os.stat(lock).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    _HELD[lock] = [fd, 1]
    try:
        yield
    finally:
        del _HELD[lock]
        try:
            os.unlink(lock)
        except OSError:
            pass
        os.close(fd)


def follow_umask(path: str) -> None:
    """Gives a directory made by ``tempfile.mkdtemp`` (always 0700) the mode a plain
    ``mkdir`` would: 0777 less the umask, so a server running as another user can read it."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, 0o777 & ~mask)


def _make_parent(parent: str, path: str, what: str) -> None:
    """Creates ``parent``, or says which part of the path is in the way."""
    try:
        os.makedirs(parent, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        blocker = parent
        while blocker and not os.path.lexists(blocker):
            blocker = os.path.dirname(blocker)
        raise OutputExistsError(f"{what} {path}: cannot create it: {blocker} is a file, not a "
                                f"directory") from None
    except OSError as err:
        raise OutputExistsError(f"{what} {path}: cannot create it ({err.strerror})") from None


def _remove_debris(parent: str, name: str) -> None:
    """Removes the staging and set-aside directories that a killed writer of ``name`` left
    beside it (``.NAME.tmp-*``, ``.NAME.old-*``). Called under the directory's lock: no live
    zoo process is writing them."""
    import glob

    for debris in glob.glob(os.path.join(glob.escape(parent), f".{glob.escape(name)}.tmp-*")) \
            + glob.glob(os.path.join(glob.escape(parent), f".{glob.escape(name)}.old-*")):
        shutil.rmtree(debris, ignore_errors=True)
