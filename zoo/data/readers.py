"""Readers for sentence-pair corpora: line-aligned files, TSV (the Anki format), JSON lines.

Every reader validates as it reads and reports a problem with the file and line it is on:
mismatched line counts, invalid UTF-8, an empty side, a missing column or field. A reader
never drops a pair silently; with ``skip_invalid=True`` bad pairs are skipped and *counted*,
and the returned :class:`Pairs` lists where each skipped pair was and why.
"""

from __future__ import annotations

import gzip
import io
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


class _Collector:
    def __init__(self, skip_invalid: bool, limit: Optional[int]):
        self.skip_invalid, self.limit = skip_invalid, limit
        self.pairs = Pairs()

    def bad(self, path, line, reason):
        if not self.skip_invalid:
            raise DataError(path, line, reason + " (pass skip_invalid=True / --skip-invalid "
                                                 "to skip and count such pairs)")
        self.pairs.skipped.append((path, line, reason))

    def add(self, path, line, src, tgt) -> bool:
        """Adds a pair; returns False once ``limit`` pairs are held."""
        src, tgt = src.strip(), tgt.strip()
        if not src or not tgt:
            side = "source and target are" if not src and not tgt else (
                "source is" if not src else "target is")
            self.bad(path, line, f"empty pair: {side} empty")
            return True
        self.pairs.append((src, tgt))
        return self.limit is None or len(self.pairs) < self.limit


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
    out = _Collector(skip_invalid, limit)
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
            out.bad(source_path if s_err else target_path, lineno, s_err or t_err)
            continue
        if not out.add(f"{source_path} / {target_path}", lineno, src, tgt):
            break
    return out.pairs


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
    for nm, col in (("source_column", source_column), ("target_column", target_column)):
        if int(col) < 0:
            raise ValueError(f"{nm} must be >= 0, got {col}")
    need = max(source_column, target_column) + 1
    out = _Collector(skip_invalid, limit)
    for lineno, text, err in _lines(path):
        if err:
            out.bad(path, lineno, err)
            continue
        if not text.strip():
            out.bad(path, lineno, "empty line")
            continue
        cols = text.split("\t")
        if len(cols) < need:
            out.bad(path, lineno, f"expected at least {need} tab-separated columns "
                                  f"(source column {source_column}, target column "
                                  f"{target_column}), got {len(cols)}: {text[:60]!r}")
            continue
        if not out.add(path, lineno, cols[source_column], cols[target_column]):
            break
    return out.pairs


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
    out = _Collector(skip_invalid, limit)
    for lineno, record, err in _json_records(path, (source_field, target_field)):
        if err:
            out.bad(path, lineno, err)
            continue
        if not out.add(path, lineno, record[source_field], record[target_field]):
            break
    return out.pairs


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
    if isinstance(paths, (list, tuple)):
        if len(paths) != 2:
            raise ValueError(f"expected one corpus file or two line-aligned files, got "
                             f"{len(paths)} paths")
        if fmt not in (None, "parallel"):
            raise ValueError(f"two paths are line-aligned parallel files, not {fmt!r}")
        return read_parallel(paths[0], paths[1], skip_invalid=skip_invalid, limit=limit)
    name = os.fspath(paths).lower()
    name = name[:-3] if name.endswith(".gz") else name
    if fmt is None:
        fmt = "jsonl" if name.endswith((".jsonl", ".json")) else "tsv"
    if fmt == "tsv":
        return read_tsv(paths, skip_invalid=skip_invalid, limit=limit, **kwargs)
    if fmt == "jsonl":
        return read_jsonl(paths, skip_invalid=skip_invalid, limit=limit, **kwargs)
    raise ValueError(f"unknown corpus format {fmt!r}; expected 'tsv', 'jsonl' or 'parallel'")
