"""`zoo train summarizer`, `zoo summarize`, `zoo evaluate --metric rouge`: end to end on the shipped DialogSum dialogues, and bad input."""

import io
import json
import os
import sys

import pytest

from zoo import cli
from zoo.data import dialogsum_pairs


def _err(capsys):
    return capsys.readouterr().err


def _jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny training run on 40 shipped dialogues (4 held out), shared below."""
    root = tmp_path_factory.mktemp("cli_summarizer")
    data = _jsonl(root / "train.jsonl", [{"dialogue": d, "summary": s}
                                          for d, s in dialogsum_pairs("train", limit=40)])
    out = root / "model"
    cap = io.StringIO()
    saved, sys.stdout = sys.stdout, cap
    try:
        rc = cli.main(["train", "summarizer", "--preset", "pointer_generator_tiny", "--data",
                       str(data), "--dev-fraction", "0.1", "--epochs", "1", "--vocab-size",
                       "400", "--out", str(out), "--progress", "none"])
    finally:
        sys.stdout = saved
    assert rc == 0
    return out, cap.getvalue()


def test_train_reports_truncation_rouge_and_writes_a_heat_map_with_p_gen(trained):
    out, report = trained
    assert {"model.keras", "source.model", "zoo.json", "attention.png"} <= set(os.listdir(out))
    assert json.loads((out / "zoo.json").read_text())["task"] == "summarization"
    assert "training dialogues were longer than 400 tokens" in report
    assert "coverage loss in the last 1 epoch(s)" in report
    assert "held-out (4 pairs, strategy beam, beam_size 4" in report
    assert "ROUGE-1/2/L/Lsum" in report
    assert "with p_gen" in report
    with open(out / "attention.png", "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_the_training_recipe_keeps_speaker_tags_whole(trained):
    from zoo.data import SentencePieceTokenizer

    tok = SentencePieceTokenizer.load(str(trained[0] / "source.model"))
    pieces = tok.id_to_piece(tok.processor.encode("#Person1#: hi\n#Person2#: bye"))
    assert "#Person1#" in pieces and "#Person2#" in pieces


def test_summarize_reads_arguments_json_lines_and_stdin(trained, tmp_path, capsys,
                                                        monkeypatch):
    out = trained[0]
    dialogues = [d for d, _ in dialogsum_pairs("dev", limit=3)]
    capsys.readouterr()
    assert cli.main(["summarize", "--model", str(out), "--max-length", "8",
                     dialogues[0]]) == 0
    one = capsys.readouterr().out.splitlines()
    assert len(one) == 1

    src = _jsonl(tmp_path / "in.jsonl", [{"id": i, "dialogue": d}
                                         for i, d in enumerate(dialogues)])
    dest = tmp_path / "out.txt"
    assert cli.main(["summarize", "--model", str(out), "--max-length", "8", "--input",
                     str(src), "--output", str(dest)]) == 0
    lines = dest.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 3 and lines[0] == one[0]

    monkeypatch.setattr(sys, "stdin", io.StringIO(dialogues[0] + "\n"))  # one dialogue
    assert cli.main(["summarize", "--model", str(out), "--max-length", "8"]) == 0
    assert capsys.readouterr().out.splitlines() == one
    monkeypatch.setattr(sys, "stdin", io.StringIO(src.read_text(encoding="utf-8")))
    assert cli.main(["summarize", "--model", str(out), "--max-length", "8"]) == 0
    assert capsys.readouterr().out.splitlines() == lines


def test_summarize_refuses_bad_input_with_the_place_named(trained, tmp_path, capsys):
    out = trained[0]
    bad = _jsonl(tmp_path / "bad.jsonl", [{"dialogue": "A: hi\nB: hello"}, {"text": "x"}])
    assert cli.main(["summarize", "--model", str(out), "--input", str(bad)]) == 2
    assert f"{bad}:2: missing field 'dialogue' (fields: text)" in _err(capsys)
    blank = _jsonl(tmp_path / "blank.jsonl", [{"dialogue": "  \n "}])
    assert cli.main(["summarize", "--model", str(out), "--input", str(blank)]) == 2
    assert f"{blank}:1: field 'dialogue' is empty" in _err(capsys)
    assert cli.main(["summarize", "--model", str(out), "A: hi", " "]) == 2
    assert "argument 2 is empty" in _err(capsys)
    long = " ".join(d for d, _ in dialogsum_pairs("dev", limit=3))
    assert cli.main(["summarize", "--model", str(out), "--max-length", "4", long]) == 0
    assert "zoo: warning: 1 input(s) longer than the model's maximum of 400 ids" in \
        _err(capsys)
    assert cli.main(["translate", "--model", str(out), "Hola."]) == 2
    assert "holds a summarization model (Summarizer)" in _err(capsys)
    with pytest.raises(SystemExit) as exit_:  # refused while parsing, before any work
        cli.main(["summarize", "--model", str(out), "--no-repeat-ngram-size", "-1", "A: hi"])
    assert exit_.value.code == 2
    assert "--no-repeat-ngram-size: no_repeat_ngram_size must be in [0, 16]" in _err(capsys)


def test_evaluate_scores_rouge_from_files_and_from_a_model(trained, tmp_path, capsys):
    hyp, ref = tmp_path / "h.txt", tmp_path / "r.txt"
    hyp.write_text("the cat sat on the mat\n", encoding="utf-8")
    ref.write_text("the cat was sitting on the mat\n", encoding="utf-8")
    assert cli.main(["evaluate", "--metric", "rouge", "--hypotheses", str(hyp),
                     "--references", str(ref)]) == 0
    # By hand: 5 shared unigrams of 6 and 7 -> F1 = 10/13; 3 shared bigrams of 5 and 6.
    assert "ROUGE-1 76.92  ROUGE-2 54.55" in capsys.readouterr().out
    data = _jsonl(tmp_path / "dev.jsonl", [{"dialogue": d, "summary": s}
                                           for d, s in dialogsum_pairs("dev", limit=2)])
    assert cli.main(["evaluate", "--model", str(trained[0]), "--data", str(data),
                     "--max-length", "6"]) == 0
    assert "ROUGE-1" in capsys.readouterr().out  # the metric follows the model's task
