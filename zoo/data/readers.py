"""Readers for sentence-pair corpora: line-aligned files, TSV (the Anki format), JSON lines.

Every reader validates as it reads and reports a problem with the file and line it is on:
mismatched line counts, invalid UTF-8, an empty side, a missing column or field. A reader
never drops a pair silently; with ``skip_invalid=True`` bad pairs are skipped and *counted*,
and the returned :class:`Pairs` lists where each skipped pair was and why.
"""

from __future__ import annotations

import gzip
import json
import os
from typing import Iterator, List, Optional, Tuple


class DataError(ValueError):
    """A corpus problem, with the file and line it is on."""

    def __init__(self, path: str, line: Optional[int], problem: str):
        self.path, self.line, self.problem = path, line, problem
        where = f"{path}:{line}" if line is not None else path
        super().__init__(f"{where}: {problem}")


class Pairs(list):
    """A list of ``(source, target)`` string pairs that also records what was skipped.

    Attributes:
        skipped: ``[(path, line, reason), ...]`` for pairs dropped by ``skip_invalid=True``.
    """

    def __init__(self, items=(), skipped=None):
        super().__init__(items)
        self.skipped: List[Tuple[str, int, str]] = list(skipped or [])

    @property
    def sources(self) -> List[str]:
        return [s for s, _ in self]

    @property
    def targets(self) -> List[str]:
        return [t for _, t in self]


def _open_bytes(path: str):
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"expected a file path, got {type(path).__name__}")
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such file")
    if os.path.isdir(path):
        raise DataError(path, None, "is a directory, expected a text file")
    with open(path, "rb") as f:
        gz = f.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gz else open(path, "rb")


def _lines(path: str) -> Iterator[Tuple[int, Optional[str], Optional[str]]]:
    """Yields (line number, text, error) with text stripped of its line break."""
    with _open_bytes(path) as f:
        try:
            for lineno, raw in enumerate(f, 1):
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError as err:
                    yield lineno, None, (f"invalid UTF-8 (byte {err.start}: "
                                         f"{raw[err.start:err.start + 1]!r})")
                    continue
                yield lineno, text.rstrip("\r\n").lstrip("\ufeff") if lineno == 1 else \
                    text.rstrip("\r\n"), None
        except (OSError, EOFError, gzip.BadGzipFile) as err:
            raise DataError(path, None, f"cannot read: {err}") from None


def _validated(rows, skip_invalid: bool, skipped: list):
    """Yields the ``(source, target)`` of ``rows`` (``(where, line, src, tgt, error)``),
    stripped; a bad row raises :class:`DataError` or, with ``skip_invalid``, is recorded in
    ``skipped``."""
    for where, line, src, tgt, err in rows:
        if err is None:
            src, tgt = src.strip(), tgt.strip()
            if not src or not tgt:
                side = "source and target are" if not src and not tgt else (
                    "source is" if not src else "target is")
                err = f"empty pair: {side} empty"
        if err is not None:
            if not skip_invalid:
                raise DataError(where, line, err + " (pass skip_invalid=True / --skip-invalid "
                                                   "to skip and count such pairs)")
            skipped.append((where, line, err))
            continue
        yield src, tgt


def _collect(rows, skip_invalid: bool, limit: Optional[int]) -> "Pairs":
    out = Pairs()
    for pair in _validated(rows, skip_invalid, out.skipped):
        out.append(pair)
        if limit is not None and len(out) >= limit:
            break
    return out


def read_parallel(source_path: str, target_path: str, skip_invalid: bool = False,
                  limit: Optional[int] = None) -> Pairs:
    """Reads two line-aligned files (plain or gzip, detected from the content).

    Args:
        source_path: One source sentence per line.
        target_path: The matching target sentence on the same line.
        skip_invalid: Skip (and count in ``Pairs.skipped``) empty pairs and lines that are not
            UTF-8, instead of raising. Mismatched line counts always raise.
        limit: Stop after this many pairs.

    Returns:
        :class:`Pairs`.

    Raises:
        FileNotFoundError: A file is missing.
        DataError: Mismatched line counts, invalid UTF-8 or an empty pair, with file and line.

    Example:
        >>> import gzip, os, tempfile
        >>> d = tempfile.mkdtemp()
        >>> _ = open(os.path.join(d, "a.de"), "w").write("Hallo\\nWelt\\n")
        >>> _ = open(os.path.join(d, "a.en"), "w").write("Hello\\nWorld\\n")
        >>> read_parallel(os.path.join(d, "a.de"), os.path.join(d, "a.en"))
        [('Hallo', 'Hello'), ('Welt', 'World')]
    """
    return _collect(_parallel_rows(source_path, target_path), skip_invalid, limit)


def _parallel_rows(source_path: str, target_path: str):
    src_it, tgt_it = _lines(source_path), _lines(target_path)
    count = 0
    while True:
        s, t = next(src_it, None), next(tgt_it, None)
        if s is None and t is None:
            break
        if s is None or t is None:
            longer, shorter = (target_path, source_path) if s is None else (
                source_path, target_path)
            rest = sum(1 for _ in (tgt_it if s is None else src_it)) + 1
            raise DataError(longer, count + 1,
                            f"mismatched line counts: {shorter} has {count} lines, {longer} "
                            f"has {count + rest}; the files must be line-aligned")
        count += 1
        (lineno, src, s_err), (_, tgt, t_err) = s, t
        if s_err or t_err:
            yield source_path if s_err else target_path, lineno, None, None, s_err or t_err
        else:
            yield f"{source_path} / {target_path}", lineno, src, tgt, None


def read_tsv(path: str, source_column: int = 1, target_column: int = 0,
             skip_invalid: bool = False, limit: Optional[int] = None) -> Pairs:
    """Reads tab-separated pairs, one per line (the Anki / manythings.org format).

    Anki files are ``english<TAB>other<TAB>attribution``, so the defaults translate column 1
    (the other language) into column 0 (English). Extra columns are ignored.

    Args:
        path: The file (plain or gzip).
        source_column: 0-based column of the source sentence.
        target_column: 0-based column of the target sentence.
        skip_invalid: Skip and count bad lines instead of raising.
        limit: Stop after this many pairs.

    Returns:
        :class:`Pairs`.

    Raises:
        DataError: A line with too few columns, invalid UTF-8 or an empty side.

    Example:
        >>> import os, tempfile
        >>> p = os.path.join(tempfile.mkdtemp(), "spa.txt")
        >>> _ = open(p, "w").write("Go.\\tVe.\\tCC-BY\\n")
        >>> read_tsv(p)
        [('Ve.', 'Go.')]
    """
    return _collect(_tsv_rows(path, source_column, target_column), skip_invalid, limit)


def _tsv_rows(path: str, source_column: int = 1, target_column: int = 0):
    for nm, col in (("source_column", source_column), ("target_column", target_column)):
        if int(col) < 0:
            raise ValueError(f"{nm} must be >= 0, got {col}")
    need = max(source_column, target_column) + 1
    for lineno, text, err in _lines(path):
        if err:
            yield path, lineno, None, None, err
            continue
        if not text.strip():
            yield path, lineno, None, None, "empty line"
            continue
        cols = text.split("\t")
        if len(cols) < need:
            yield path, lineno, None, None, (
                f"expected at least {need} tab-separated columns (source column "
                f"{source_column}, target column {target_column}), got {len(cols)}: "
                f"{text[:60]!r}")
            continue
        yield path, lineno, cols[source_column], cols[target_column], None


def read_jsonl(path: str, source_field: str = "source", target_field: str = "target",
               skip_invalid: bool = False, limit: Optional[int] = None) -> Pairs:
    """Reads JSON lines, one object per line with a source and a target string field.

    Args:
        path: The file (plain or gzip).
        source_field: Key of the source text.
        target_field: Key of the target text.
        skip_invalid: Skip and count bad lines instead of raising.
        limit: Stop after this many pairs.

    Returns:
        :class:`Pairs`.

    Raises:
        DataError: Invalid JSON, a missing or non-string field, invalid UTF-8 or an empty side.

    Example:
        >>> import os, tempfile
        >>> p = os.path.join(tempfile.mkdtemp(), "d.jsonl")
        >>> _ = open(p, "w").write('{"source": "Hallo", "target": "Hello"}\\n')
        >>> read_jsonl(p)
        [('Hallo', 'Hello')]
    """
    return _collect(_jsonl_rows(path, source_field, target_field), skip_invalid, limit)


def _jsonl_rows(path: str, source_field: str = "source", target_field: str = "target"):
    for lineno, record, err in _json_records(path, (source_field, target_field)):
        if err:
            yield path, lineno, None, None, err
        else:
            yield path, lineno, record[source_field], record[target_field], None


def _json_records(path: str, fields):
    """Yields ``(line number, record, error)`` for each non-blank JSON line: the record when
    it is an object whose ``fields`` are strings, else the reason it is not."""
    for lineno, text, err in _lines(path):
        if err:
            yield lineno, None, err
            continue
        if not text.strip():
            continue  # blank lines between records are allowed in JSON lines
        try:
            record = json.loads(text)
        except json.JSONDecodeError as e:
            yield lineno, None, f"invalid JSON at column {e.colno}: {e.msg}"
            continue
        if not isinstance(record, dict):
            yield lineno, None, f"expected a JSON object, got {type(record).__name__}"
            continue
        missing = [k for k in fields if k not in record]
        if missing:
            yield lineno, None, (f"missing field {missing[0]!r} (fields: "
                                 f"{', '.join(sorted(record)) or 'none'})")
            continue
        bad = [k for k in fields if not isinstance(record[k], str)]
        if bad:
            yield lineno, None, (f"field {bad[0]!r} must be a string, got "
                                 f"{type(record[bad[0]]).__name__}")
            continue
        yield lineno, record, None


def read_jsonl_texts(path: str, field: str = "dialogue", limit: Optional[int] = None
                     ) -> List[str]:
    r"""Reads one text field from JSON lines (e.g. the dialogues to summarize).

    Args:
        path: The file (plain or gzip).
        field: Key of the text.
        limit: Stop after this many texts.

    Returns:
        The texts, in file order (a text may span lines: ``"A: hi\nB: hello"`` in JSON).

    Raises:
        DataError: Invalid JSON, a missing, non-string or empty field, or invalid UTF-8,
            with the file and line.

    Example:
        >>> import os, tempfile
        >>> p = os.path.join(tempfile.mkdtemp(), "d.jsonl")
        >>> _ = open(p, "w").write('{"dialogue": "A: hi\\nB: hello"}')
        >>> read_jsonl_texts(p)
        ['A: hi\nB: hello']
    """
    texts = []
    for lineno, record, err in _json_records(path, (field,)):
        if err:
            raise DataError(path, lineno, err)
        if not record[field].strip():
            raise DataError(path, lineno, f"field {field!r} is empty")
        texts.append(record[field])
        if limit is not None and len(texts) >= limit:
            break
    return texts


def read_pairs(paths, fmt: Optional[str] = None, skip_invalid: bool = False,
               limit: Optional[int] = None, **kwargs) -> Pairs:
    """Reads a corpus in whichever format its path(s) say.

    Args:
        paths: One path (``.tsv``/``.txt`` TSV, ``.jsonl``/``.json``, optionally ``.gz``) or
            a ``(source_path, target_path)`` pair of line-aligned files.
        fmt: ``"tsv"``, ``"jsonl"`` or ``"parallel"``; guessed from the names if None.
        skip_invalid: See the readers.
        limit: Stop after this many pairs.
        **kwargs: Passed to the reader (columns, fields).

    Returns:
        :class:`Pairs`.
    """
    return _collect(_rows(paths, fmt, **kwargs), skip_invalid, limit)


def iter_pairs(paths, fmt: Optional[str] = None, skip_invalid: bool = False,
               skipped: Optional[list] = None, **kwargs) -> Iterator[Tuple[str, str]]:
    """Streams a corpus pair by pair, with :func:`read_pairs`'s checks, in constant memory.

    What training on corpora larger than memory reads (``zoo.data.make_stream_dataset``).

    Args:
        paths, fmt, skip_invalid, **kwargs: As :func:`read_pairs`.
        skipped: A list that receives ``(path, line, reason)`` for each skipped pair.

    Yields:
        ``(source, target)`` stripped strings, in file order.

    Example:
        >>> import os, tempfile
        >>> p = os.path.join(tempfile.mkdtemp(), "spa.txt")
        >>> _ = open(p, "w").write("Go.\\tVe.\\n")
        >>> list(iter_pairs(p))
        [('Ve.', 'Go.')]
    """
    return _validated(_rows(paths, fmt, **kwargs), skip_invalid,
                      skipped if skipped is not None else [])


def _rows(paths, fmt=None, **kwargs):
    if isinstance(paths, (list, tuple)):
        if len(paths) != 2:
            raise ValueError(f"expected one corpus file or two line-aligned files, got "
                             f"{len(paths)} paths")
        if fmt not in (None, "parallel"):
            raise ValueError(f"two paths are line-aligned parallel files, not {fmt!r}")
        return _parallel_rows(paths[0], paths[1])
    name = os.fspath(paths).lower()
    name = name[:-3] if name.endswith(".gz") else name
    if fmt is None:
        fmt = "jsonl" if name.endswith((".jsonl", ".json")) else "tsv"
    if fmt == "tsv":
        return _tsv_rows(paths, **kwargs)
    if fmt == "jsonl":
        return _jsonl_rows(paths, **kwargs)
    raise ValueError(f"unknown corpus format {fmt!r}; expected 'tsv', 'jsonl' or 'parallel'")


class Corpus:
    """Corpus files that training streams instead of loading (``zoo.recipes.train``).

    Iterating it reads the files again, pair by pair, with :func:`read_pairs`'s checks.

    Args:
        paths: One corpus file, or ``(source_path, target_path)`` line-aligned files.
        fmt, skip_invalid, **reader_kwargs: As :func:`read_pairs`.

    Example:
        >>> import os, tempfile
        >>> p = os.path.join(tempfile.mkdtemp(), "spa.txt")
        >>> _ = open(p, "w").write("Go.\\tVe.\\n")
        >>> list(Corpus(p))
        [('Ve.', 'Go.')]
    """

    def __init__(self, paths, fmt: Optional[str] = None, skip_invalid: bool = False,
                 **reader_kwargs):
        self.paths = tuple(paths) if isinstance(paths, (list, tuple)) else paths
        for path in (self.paths if isinstance(self.paths, tuple) else (self.paths,)):
            _open_bytes(path).close()  # a missing or unreadable file: named now
        self.fmt, self.skip_invalid, self.reader_kwargs = fmt, skip_invalid, reader_kwargs
        self.skipped: List[Tuple[str, int, str]] = []

    def __iter__(self) -> Iterator[Tuple[str, str]]:
        self.skipped = []
        return iter_pairs(self.paths, self.fmt, self.skip_invalid, self.skipped,
                          **self.reader_kwargs)

    def fingerprint(self) -> str:
        """Names, sizes and modification times of the files (what a resume checks)."""
        files = self.paths if isinstance(self.paths, tuple) else (self.paths,)
        return ";".join(f"{os.path.abspath(f)}:{os.path.getsize(f)}:"
                        f"{int(os.path.getmtime(f))}" for f in files)
