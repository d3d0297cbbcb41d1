"""Corpus readers: every problem is reported with its file and line, or skipped and counted."""

import gzip
import json

import pytest

from zoo.data import DataError, read_jsonl, read_pairs, read_parallel, read_tsv


def _write(path, data, gz=False):
    raw = data.encode("utf-8") if isinstance(data, str) else data
    if gz:
        with gzip.open(path, "wb") as f:
            f.write(raw)
    else:
        path.write_bytes(raw)
    return str(path)


def test_parallel_plain_and_gzip(tmp_path):
    src = _write(tmp_path / "a.de.gz", "Hallo Welt\nGuten Tag\n", gz=True)
    tgt = _write(tmp_path / "a.en", "Hello world\r\nGood day\n")
    pairs = read_parallel(src, tgt)
    assert pairs == [("Hallo Welt", "Hello world"), ("Guten Tag", "Good day")]
    assert pairs.sources == ["Hallo Welt", "Guten Tag"] and pairs.skipped == []


def test_parallel_mismatched_counts_name_both_files(tmp_path):
    src = _write(tmp_path / "s.txt", "a\nb\nc\n")
    tgt = _write(tmp_path / "t.txt", "x\ny\n")
    with pytest.raises(DataError) as err:
        read_parallel(src, tgt)
    msg = str(err.value)
    assert "s.txt:3" in msg and "t.txt has 2 lines" in msg and "s.txt has 3" in msg
    # even with skip_invalid: a misalignment is never skipped
    with pytest.raises(DataError, match="mismatched"):
        read_parallel(src, tgt, skip_invalid=True)


def test_parallel_invalid_utf8_and_empty_side(tmp_path):
    src = _write(tmp_path / "s.txt", b"ok\n\xff\xfe bad\n\nfine\n")
    tgt = _write(tmp_path / "t.txt", "1\n2\n3\n4\n")
    with pytest.raises(DataError, match=r"s\.txt:2: invalid UTF-8"):
        read_parallel(src, tgt)
    tgt2 = _write(tmp_path / "t2.txt", "1\n2\n3\n   \n")
    src2 = _write(tmp_path / "s2.txt", "a\nb\nc\nd\n")
    with pytest.raises(DataError, match=r":4: empty pair: target is empty"):
        read_parallel(src2, tgt2)
    pairs = read_parallel(src, tgt, skip_invalid=True)
    assert pairs == [("ok", "1"), ("fine", "4")]
    assert [(line, reason.split(" (")[0]) for _, line, reason in pairs.skipped] == [
        (2, "invalid UTF-8"), (3, "empty pair: source is empty")]


def test_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        read_parallel(str(tmp_path / "nope.txt"), str(tmp_path / "nope.txt"))


def test_tsv_anki_layout_and_errors(tmp_path):
    p = _write(tmp_path / "spa.txt", "Go.\tVe.\tCC-BY 2.0 (France)\nHi.\tHola.\tCC\n")
    assert read_tsv(p) == [("Ve.", "Go."), ("Hola.", "Hi.")]
    assert read_tsv(p, source_column=0, target_column=1)[0] == ("Go.", "Ve.")
    bad = _write(tmp_path / "bad.tsv", "Go.\tVe.\nno tab here\n")
    with pytest.raises(DataError, match=r"bad\.tsv:2: expected at least 2 tab-separated"):
        read_tsv(bad)
    assert len(read_tsv(bad, skip_invalid=True).skipped) == 1
    assert read_tsv(p, limit=1) == [("Ve.", "Go.")]


def test_jsonl_fields_and_errors(tmp_path):
    rows = [{"source": "Hallo", "target": "Hello"}, {"de": "x"}]
    p = _write(tmp_path / "d.jsonl", json.dumps(rows[0]) + "\n\n" + json.dumps(rows[1]) + "\n")
    with pytest.raises(DataError, match=r"d\.jsonl:3: missing field 'source' \(fields: de\)"):
        read_jsonl(p)
    assert read_jsonl(p, skip_invalid=True) == [("Hallo", "Hello")]
    p2 = _write(tmp_path / "e.jsonl", '{"source": "a", "target": 3}\n{broken\n')
    with pytest.raises(DataError, match="field 'target' must be a string"):
        read_jsonl(p2)
    skipped = read_jsonl(p2, skip_invalid=True).skipped
    assert skipped[1][1] == 2 and "invalid JSON" in skipped[1][2]
    p3 = _write(tmp_path / "f.jsonl", '{"de": "Hallo", "en": "Hello"}\n')
    assert read_jsonl(p3, source_field="de", target_field="en") == [("Hallo", "Hello")]


def test_read_pairs_dispatches_on_names(tmp_path):
    tsv = _write(tmp_path / "c.tsv.gz", "Hi.\tHola.\n", gz=True)
    js = _write(tmp_path / "c.jsonl", '{"source": "a", "target": "b"}\n')
    assert read_pairs(tsv) == [("Hola.", "Hi.")]
    assert read_pairs(js) == [("a", "b")]
    s = _write(tmp_path / "s", "a\n")
    t = _write(tmp_path / "t", "b\n")
    assert read_pairs([s, t]) == [("a", "b")]
    with pytest.raises(ValueError, match="unknown corpus format"):
        read_pairs(tsv, fmt="csv")
    with pytest.raises(ValueError, match="3 paths"):
        read_pairs([s, t, s])
