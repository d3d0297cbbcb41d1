"""An imported KerasHub T5 or BART deployed through zoo's exports against KerasHub's own
``generate``.

One T5 of t5-small's shape (6+6 layers, d=512, 8 heads of 64, ffn 2,048, ReLU, tied output),
or one BART of bart-base's (6+6 layers, d=768, 12 heads, ffn 3,072, 1,024 learned positions);
random weights: nothing can be downloaded here. The vocabulary is learned from the embedded
DialogSum dialogues: a SentencePiece model for T5, a byte-level BPE (`tokenizers`, as GPT-2's
and BART's) for BART (t5-small's 32,128 pieces and bart-base's 50,265 are not available
offline, so the output projection is smaller than theirs). zoo imports it
(``zoo.models.import_keras_hub``) and exports it to ONNX and CTranslate2; each engine then
summarizes the same DialogSum dev dialogues greedily, forced to the same number of steps (no
early end: zoo's and CTranslate2's minimum length, KerasHub with no stop token), at batch 1
and 32. KerasHub's ``generate`` runs compiled (its default) on token ids; T5's ids come
from SentencePiece and BART's from KerasHub's own tokenizer, both inside its time, as
tokenization is inside zoo's and CTranslate2's. The engines of one batch
size alternate in rounds (the host's speed drifts); the median round is reported, in
sentences per second, with the machine's CPU.

Usage:
    python bench/imported.py                 # T5, 3 rounds
    python bench/imported.py --model bart
    python bench/imported.py --rounds 1 --sentences 8
"""

import argparse
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)
RESULTS = os.path.join(HERE, "results", "imported.jsonl")
T5_SMALL = {"num_layers": 6, "num_heads": 8, "hidden_dim": 512, "intermediate_dim": 2048,
            "key_value_dim": 64, "activation": "relu", "use_gated_activation": False,
            "tie_embedding_weights": True, "dropout": 0.0}
BART_BASE = {"num_layers": 6, "num_heads": 12, "hidden_dim": 768, "intermediate_dim": 3072,
             "dropout": 0.0, "max_sequence_length": 1024}


def t5_sentencepiece(vocab_size):
    """A SentencePiece model with T5's special ids, learned from the embedded dialogues."""
    import io

    import sentencepiece as spm

    from zoo.data import dialogsum_pairs

    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter([d for d, _ in dialogsum_pairs("train")]), model_writer=buf,
        vocab_size=vocab_size, pad_id=0, eos_id=1, unk_id=2, bos_id=-1, minloglevel=2,
        hard_vocab_limit=False)
    return buf.getvalue()


def engines(args, workdir):
    """``{name: run(texts) -> None}`` for the three engines, and the dialogues."""
    import keras
    import keras_hub
    import numpy as np
    import sentencepiece as spm

    from zoo.data import dialogsum_pairs
    from zoo.export import export
    from zoo.models.importers import import_keras_hub
    from zoo.serving import load

    keras.utils.set_random_seed(0)
    if args.model == "bart":
        hub, model, keras_hub_ids = _bart(args)
    else:
        proto = t5_sentencepiece(args.vocab)
        sp = spm.SentencePieceProcessor(model_proto=proto)
        backbone = keras_hub.models.T5Backbone(vocabulary_size=sp.get_piece_size(),
                                               **T5_SMALL)
        hub = keras_hub.models.T5Seq2SeqLM(backbone=backbone, preprocessor=None)
        model = import_keras_hub(hub, tokenizer=proto, max_source_length=args.source_length,
                                 max_target_length=args.steps)

        def keras_hub_ids(batch):
            ids = [sp.encode(t)[:args.source_length - 1] + [1] for t in batch]
            return _hub_inputs(ids, [0], args.steps)

    fixed = {"max_length": args.steps, "min_length": args.steps, "no_repeat_ngram_size": 0}
    formats = [f for f in ("onnx", "ctranslate2") if f not in args.skip]
    for fmt in formats:
        export(model, os.path.join(workdir, fmt), format=fmt, **fixed)
    texts = [d for d, _ in dialogsum_pairs("dev")][:args.sentences]

    names = {"onnx": "zoo ONNX", "ctranslate2": "CTranslate2 float32 (zoo export)"}
    runs = {"KerasHub generate (compiled)":
            lambda b: hub.generate(keras_hub_ids(b), stop_token_ids=None)}
    for fmt in formats:
        runner = load(os.path.join(workdir, fmt))
        runs[names[fmt]] = lambda b, r=runner: r.generate_text(b, strategy="greedy")
    return runs, texts


def _hub_inputs(ids, start, steps, pad=0):
    """KerasHub's generate inputs: sources padded with ``pad``, the prompt ``start`` then
    room for the rest of ``steps`` decoder inputs."""
    import numpy as np

    width = max(map(len, ids))
    src = np.array([r + [pad] * (width - len(r)) for r in ids], "int32")
    prompt = np.full((len(ids), steps + 1), pad, "int32")
    prompt[:, :len(start)] = start
    mask = np.zeros_like(prompt, dtype=bool)
    mask[:, :len(start)] = True
    return {"encoder_token_ids": src, "encoder_padding_mask": src != pad,
            "decoder_token_ids": prompt, "decoder_padding_mask": mask}


def _bart(args):
    """KerasHub's BART of bart-base's shape with its tokenizer, zoo's import of both, and
    KerasHub's inputs in BART's ids from its own tokenizer (``<s> x </s>``; prompt
    ``</s> <s>``)."""
    import keras_hub

    from zoo.data import dialogsum_pairs
    from zoo.models.importers import BART_IDS, import_keras_hub

    from bpe_parity import learn

    _, vocab, merges = learn([d for d, _ in dialogsum_pairs("train")], args.vocab)
    shape = dict(BART_BASE)
    if args.dim:
        shape.update(hidden_dim=args.dim, num_heads=args.dim // 64, intermediate_dim=4 * args.dim)
    backbone = keras_hub.models.BartBackbone(vocabulary_size=len(vocab), **shape)
    hub = keras_hub.models.BartSeq2SeqLM(backbone=backbone, preprocessor=None)
    tokenizer = keras_hub.models.BartTokenizer(vocabulary=vocab, merges=merges)
    model = import_keras_hub(hub, tokenizer=tokenizer, max_source_length=args.source_length,
                             max_target_length=args.steps)
    b = BART_IDS

    def keras_hub_ids(batch):
        ids = [[b["start"]] + list(tokenizer(t))[:args.source_length - 2] + [b["end"]]
               for t in batch]
        return _hub_inputs(ids, [b["end"], b["start"]], args.steps, pad=b["pad"])

    return hub, model, keras_hub_ids


def timed(run, texts, batch):
    t0 = time.perf_counter()
    for i in range(0, len(texts), batch):
        run(texts[i:i + batch])
    return len(texts) / (time.perf_counter() - t0)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--sentences", type=int, default=32)
    p.add_argument("--steps", type=int, default=32, help="tokens generated per summary")
    p.add_argument("--source-length", type=int, default=128)
    p.add_argument("--vocab", type=int, default=8000)
    p.add_argument("--model", choices=("t5", "bart"), default="t5")
    p.add_argument("--dim", type=int, default=None,
                   help="BART's model size instead of bart-base's 768 (heads of 64, ffn 4x)")
    p.add_argument("--skip", nargs="*", default=[], choices=("onnx", "ctranslate2"),
                   help="leave an export out (bart-base's ONNX export peaks at 11 GB)")
    args = p.parse_args(argv)
    import numpy as np

    from quality import append_record, hardware

    with tempfile.TemporaryDirectory() as workdir:
        runs, texts = engines(args, workdir)
        rows = {}
        for batch in (1, 32):
            for run in runs.values():  # warm-up: every shape traced before the clock
                run(texts[:batch])
            seen = {name: [] for name in runs}
            for _ in range(args.rounds):
                for name, run in runs.items():
                    seen[name].append(timed(run, texts, batch))
            rows[batch] = {name: float(np.median(v)) for name, v in seen.items()}
    shape = "t5-small" if args.model == "t5" else f"bart-base (d={args.dim or 768})"
    print(f"{hardware()}; {shape} shape, vocabulary {args.vocab}, {len(texts)} DialogSum dev "
          f"dialogues (<= {args.source_length} ids), {args.steps} greedy steps each, median "
          f"of {args.rounds} rounds\n")
    print("| engine | batch 1 sentences/s | batch 32 sentences/s |\n|---|---|---|")
    for name in runs:
        print(f"| {name} | {rows[1][name]:.2f} | {rows[32][name]:.2f} |")
    append_record(RESULTS, {"model": args.model, "dim": args.dim, "rows": rows, "steps": args.steps, "sentences": len(texts),
                            "rounds": args.rounds, "hardware": hardware(),
                            "date": time.strftime("%Y-%m-%d %H:%M")})


if __name__ == "__main__":
    main()
