"""`zoo train translator`, `zoo translate`, `zoo evaluate`: end to end, and bad input."""

import gzip
import io
import os
import sys

import pytest

from zoo import cli
from zoo.data import anki_spa_eng_pairs


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny training run on the shipped pairs, shared by the tests below: the main job's
    network (its recipe's overrides: Luong attention after the GRU, one tied embedding) at
    rnn_tiny's size, so the exports below check what `zoo train translator` writes."""
    from zoo.models import presets

    main_job = presets.get_recipe("anki_translator")
    tiny = presets.get_preset("rnn_tiny")["config"]["decoder"]["config"]
    overrides = dict(main_job["overrides"])
    if "output_dim" in overrides:  # tied: the bottleneck has the embedding's size
        overrides["output_dim"] = tiny["embedding_dim"]
    presets.register_recipe("cli_test_main_job", {
        "task": "translation", "description": "the main job's network at rnn_tiny's size",
        "preset": "rnn_tiny", "overrides": overrides,
        "train": presets.get_preset("rnn_tiny")["train"]})
    out = tmp_path_factory.mktemp("cli") / "model"
    try:
        # 585 training pairs: 15 length-bucketed batches an epoch; the 22-update budget ends
        # epoch 2 halfway.
        rc = cli.main(["train", "translator", "--recipe", "cli_test_main_job", "--limit",
                       "600", "--epochs", "3", "--max-steps", "22", "--average-last", "2",
                       "--vocab-size", "300", "--out", str(out), "--progress", "none",
                       "--example", "Tengo hambre."])
    finally:
        presets.RECIPES.pop("cli_test_main_job")
    assert rc == 0
    return out


def test_train_writes_model_heat_map_and_logs(trained, capsys):
    names = set(os.listdir(trained))
    assert {"model.keras", "source.model", "zoo.json", "attention.png", "logs"} <= names
    with open(trained / "attention.png", "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert any(f.startswith("events") for _, _, fs in os.walk(trained / "logs") for f in fs)


def test_update_budget_and_checkpoint_averaging_are_recorded(trained):
    import json

    info = json.loads((trained / "zoo.json").read_text())["extra"]["training"]
    assert info["steps"] == 22 and info["epochs_trained"] == 2
    averaged = info["averaged"]
    assert averaged["epochs"] == [1, 2]
    # Kept by validation: the average only where its held-out loss is the lower one.
    better = averaged["averaged"] < averaged["single"]
    assert averaged["kept"] == ("average" if better else "best epoch")


def test_translate_from_arguments_file_and_stdin(trained, tmp_path, capsys, monkeypatch):
    capsys.readouterr()
    assert cli.main(["translate", "--model", str(trained), "Tengo hambre.", "Hola."]) == 0
    from_args = capsys.readouterr().out.splitlines()
    assert len(from_args) == 2 and all(line.strip() for line in from_args)

    src = tmp_path / "in.txt"
    src.write_text("Tengo hambre.\nHola.\n", encoding="utf-8")
    out = tmp_path / "out.txt"
    assert cli.main(["translate", "--model", str(trained), "--input", str(src),
                     "--output", str(out), "--beam-size", "3"]) == 0
    assert len(out.read_text(encoding="utf-8").splitlines()) == 2

    monkeypatch.setattr(sys, "stdin", io.StringIO("Tengo hambre.\nHola.\n"))
    assert cli.main(["translate", "--model", str(trained)]) == 0
    assert capsys.readouterr().out.splitlines() == from_args  # greedy: same as arguments


def test_saved_model_loads_in_a_fresh_process(trained, capsys):
    """What a user does: a new process that imports nothing of zoo but the command."""
    import subprocess

    capsys.readouterr()
    assert cli.main(["translate", "--model", str(trained), "Tengo hambre."]) == 0
    here = capsys.readouterr().out
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    run = subprocess.run([sys.executable, "-m", "zoo.cli", "translate", "--model", str(trained),
                          "Tengo hambre."], capture_output=True, text=True, env=env,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout == here


def test_evaluate_model_and_files(trained, tmp_path, capsys):
    pairs = anki_spa_eng_pairs(limit=20)
    corpus = tmp_path / "dev.tsv"
    corpus.write_text("".join(f"{e}\t{s}\n" for s, e in pairs), encoding="utf-8")
    assert cli.main(["evaluate", "--model", str(trained), "--data", str(corpus)]) == 0
    assert "BLEU" in capsys.readouterr().out
    hyp, ref = tmp_path / "h.txt", tmp_path / "r.txt"
    hyp.write_text("the cat sat on the mat\n")
    ref.write_text("the cat sat on the mat\n")
    assert cli.main(["evaluate", "--hypotheses", str(hyp), "--references", str(ref)]) == 0
    assert "BLEU 100.00" in capsys.readouterr().out


def _err(capsys):
    return capsys.readouterr().err


def test_missing_files_are_named(tmp_path, capsys):
    assert cli.main(["train", "translator", "--data", str(tmp_path / "nope.tsv")]) == 2
    assert "nope.tsv: no such file" in _err(capsys)
    assert cli.main(["translate", "--model", str(tmp_path / "nomodel"), "Hola."]) == 2
    assert "no such model directory" in _err(capsys)
    assert cli.main(["translate", "--model", str(tmp_path), "--input",
                     str(tmp_path / "in.txt")]) == 2
    assert "in.txt: no such file" in _err(capsys)


def test_mismatched_pairs_name_file_and_line(tmp_path, capsys):
    src, tgt = tmp_path / "train.de.gz", tmp_path / "train.en"
    with gzip.open(src, "wt", encoding="utf-8") as f:
        f.write("Hallo\nWelt\nnoch eins\n")
    tgt.write_text("Hello\nWorld\n", encoding="utf-8")
    assert cli.main(["train", "translator", "--data", str(src), str(tgt)]) == 2
    err = _err(capsys)
    assert "train.de.gz:3: mismatched line counts" in err and "train.en has 2 lines" in err


def test_invalid_and_empty_pairs_are_reported_or_skipped(tmp_path, capsys):
    bad = tmp_path / "bad.tsv"
    bad.write_bytes(b"Hi.\tHola.\n\xff\xfe\tx\nBye.\t\n")
    assert cli.main(["train", "translator", "--data", str(bad)]) == 2
    assert "bad.tsv:2: invalid UTF-8" in _err(capsys)
    assert cli.main(["evaluate", "--model", str(tmp_path), "--data", str(bad),
                     "--skip-invalid"]) == 2
    err = _err(capsys)
    assert "skipped 2 invalid pairs" in err


def test_empty_input_gives_empty_output_and_blank_lines_are_errors(trained, tmp_path, capsys,
                                                                   monkeypatch):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    assert cli.main(["translate", "--model", str(trained), "--input", str(empty)]) == 0
    assert capsys.readouterr() == ("", "")
    gap = tmp_path / "gap.txt"
    gap.write_text("Hola.\n\nAdiós.\n")
    assert cli.main(["translate", "--model", str(trained), "--input", str(gap)]) == 2
    assert "line 2 is empty" in _err(capsys)
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    assert cli.main(["translate", "--model", str(trained)]) == 0
    assert capsys.readouterr() == ("", "")
    empty_tsv = tmp_path / "e.tsv"
    empty_tsv.write_text("")
    assert cli.main(["train", "translator", "--data", str(empty_tsv)]) == 2
    assert "no text pairs" in _err(capsys)


def test_evaluate_rejects_misaligned_files_and_bad_options(tmp_path, capsys):
    h, r = tmp_path / "h", tmp_path / "r"
    h.write_text("a\nb\n")
    r.write_text("a\n")
    assert cli.main(["evaluate", "--hypotheses", str(h), "--references", str(r)]) == 2
    assert "has 2 lines but" in _err(capsys)
    assert cli.main(["train", "translator", "--preset", "transformer_smal"]) == 2
    assert "Did you mean 'transformer_small'" in _err(capsys)
    with pytest.raises(SystemExit):
        cli.main(["translate", "--model", "x", "--beam-size", "0", "Hola."])
    assert "--beam-size: beam_size must be in [1, 64], got 0" in _err(capsys)


def test_export_command_writes_savedmodel_with_parity(trained, tmp_path, capsys):
    sents = tmp_path / "s.txt"
    sents.write_text("Tengo hambre.\nHola.\n", encoding="utf-8")
    out = tmp_path / "sm"
    assert cli.main(["export", "--model", str(trained), "--out", str(out), "--verify",
                     str(sents)]) == 0
    assert "parity of savedmodel on 2 sentences: identical outputs 100.0%" in \
        capsys.readouterr().out
    import json

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["parity"]["savedmodel"]["token_agreement"] == 1.0
    assert (out / "saved_model.pb").exists()


@pytest.mark.slow  # the same exporter as the API's (tests/export); the flags are CLI-only
def test_export_command_writes_onnx(trained, tmp_path, capsys):
    out = tmp_path / "onnx"
    sents = tmp_path / "s.txt"
    sents.write_text("Tengo hambre.\nHola.\n", encoding="utf-8")
    assert cli.main(["export", "--model", str(trained), "--format", "onnx", "--out",
                     str(out), "--max-length", "8", "--verify", str(sents)]) == 0
    assert "parity of onnx on 2 sentences: identical outputs 100.0%" in capsys.readouterr().out
    assert {"encoder.onnx", "decoder_step.onnx", "greedy.onnx", "beam.onnx",
            "source.model", "manifest.json"} <= set(os.listdir(out))


@pytest.mark.slow  # CI time on 2 cores; see docs/RESULTS.md, Test suite
def test_export_command_writes_litert(trained, tmp_path, capsys):
    out = tmp_path / "lite"
    assert cli.main(["export", "--model", str(trained), "--format", "litert", "--out",
                     str(out), "--max-length", "8", "--max-source-length", "16",
                     "--quantize", "int8"]) == 0
    # (.zoo-written.json marks the directory as a zoo export: what --overwrite may replace.)
    assert {"model_int8.tflite", "source.model", "manifest.json", ".zoo-written.json"} == \
        set(os.listdir(out))
    # An export over it is refused, then replaces it whole with --overwrite (no stale files).
    assert cli.main(["export", "--model", str(trained), "--format", "onnx", "--out",
                     str(out), "--max-length", "8"]) == 2
    assert "is not empty" in _err(capsys)
    assert "model_int8.tflite" in os.listdir(out)
    assert cli.main(["export", "--model", str(trained), "--format", "onnx", "--out",
                     str(out), "--max-length", "8", "--overwrite"]) == 0
    names = set(os.listdir(out))
    assert "model_int8.tflite" not in names and "greedy.onnx" in names
    assert [n for n in os.listdir(tmp_path) if n.startswith(".")] == []


def test_presets_command_lists_them(capsys):
    from zoo.models import presets

    assert cli.main(["presets"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in presets.names() + presets.recipe_names())


def test_files_and_outputs_are_checked_before_any_work(trained, tmp_path, capsys):
    # train --out onto a model: refused before the tokenizer is learned; the model is kept.
    before = (trained / "model.keras").read_bytes()
    assert cli.main(["train", "translator", "--limit", "100", "--out", str(trained)]) == 2
    assert "is not empty; choose another directory or pass overwrite" in _err(capsys)
    assert (trained / "model.keras").read_bytes() == before
    assert cli.main(["export", "--model", str(trained), "--out", str(trained),
                     "--overwrite"]) == 2
    assert "is the model directory" in _err(capsys)
    assert (trained / "model.keras").read_bytes() == before
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    assert cli.main(["train", "translator", "--limit", "100", "--out", str(a_file)]) == 2
    assert f"--out {a_file} exists and is not a directory" in _err(capsys)
    # translate --output DIR: named, before translating.
    assert cli.main(["translate", "--model", str(trained), "--output", str(tmp_path),
                     "Hola."]) == 2
    assert _err(capsys) == f"zoo translate: error: {tmp_path}: is a directory; --output " \
                           f"takes a file\n"
    # A damaged model, a corrupt tokenizer: one line naming the file.
    bad = tmp_path / "bad"
    bad.mkdir()
    for name in os.listdir(trained):
        if os.path.isfile(trained / name):
            (bad / name).write_bytes((trained / name).read_bytes())
    (bad / "source.model").write_bytes(b"not a model")
    assert cli.main(["translate", "--model", str(bad), "Hola."]) == 2
    err = _err(capsys)
    assert err.count("\n") == 1 and "source.model: not a valid SentencePiece model" in err
    data = (trained / "model.keras").read_bytes()
    (bad / "model.keras").write_bytes(data[: len(data) // 3])
    assert cli.main(["translate", "--model", str(bad), "Hola."]) == 2
    err = _err(capsys)
    assert err.count("\n") == 1 and "model.keras: not a complete .keras archive" in err


@pytest.mark.slow  # CI time on 2 cores; see docs/RESULTS.md, Test suite
def test_train_and_translate_print_nothing_on_stderr(tmp_path):
    """Run as a user runs them, in a fresh process: stderr stays empty on success, and
    progress written to a pipe is one line per epoch, with no backspaces or colours."""
    import subprocess

    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL",
                                                            "ZOO_VERBOSE")}
    out = tmp_path / "m"
    train = subprocess.run(
        [sys.executable, "-m", "zoo.cli", "train", "translator", "--preset", "rnn_tiny",
         "--limit", "300", "--epochs", "2", "--vocab-size", "200", "--out", str(out)],
        capture_output=True, text=True, env=env, timeout=600)
    assert train.returncode == 0, train.stderr[-2000:]
    assert train.stderr == ""
    assert "\b" not in train.stdout and "\x1b" not in train.stdout
    assert sum(line.startswith("Epoch ") for line in train.stdout.splitlines()) == 2
    tr = subprocess.run([sys.executable, "-m", "zoo.cli", "translate", "--model", str(out),
                         "Hola."], capture_output=True, text=True, env=env, timeout=300)
    assert tr.returncode == 0 and tr.stderr == "" and len(tr.stdout.splitlines()) == 1
    for command in ("presets", "attention"):
        listing = subprocess.run([sys.executable, "-m", "zoo.cli", command],
                                 capture_output=True, text=True, env=env, timeout=300)
        assert listing.returncode == 0 and listing.stderr == "", (command, listing.stderr)
