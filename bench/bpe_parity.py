"""Byte-level BPE: do KerasHub's in-graph tokenizer and the `tokenizers` library give the same ids?

BART's tokenizer (issue 38) needs one implementation inside TensorFlow graphs (the SavedModel)
and one without TensorFlow (the ONNX, LiteRT and CTranslate2 runners), with identical ids.
This learns a byte-level BPE from the embedded DialogSum dialogues with `tokenizers`, builds
KerasHub's ``BytePairTokenizer`` from the same vocabulary and merges and counts the
texts on which each KerasHub path differs from `tokenizers` (GPT-2's pre-split, the reference
for BART)::

    python bench/bpe_parity.py [--vocab-size 600] [--train 2000]

KerasHub has two paths: ``_tokenize_tf`` (tf-text regex split and a TensorFlow merge loop:
what a graph runs) and, when called eagerly on Python strings, ``tokenizers`` with Llama 3's
split pattern. The texts: DialogSum dev dialogues and summaries, and hand-written edge cases
(quotes after a space, runs of spaces, tabs, CRLF, no-break and thin spaces, accents, emoji, CJK,
empty).
"""

import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.dirname(HERE), HERE]

EDGE_CASES = ["I 'm here", "he said 'm' ok", "a  b", "x\n\ny", "  lead", "trail  ", "",
              "naïve café — “quotes” 😀 日本語 \t tab  double  space\r\nwin", "x\u00a0y\u2009z",
              "#Person1#: Hi, I 'm Tom.\n#Person2#: It 's   fine."]


def learn(texts, vocab_size):
    """A GPT-2-style byte-level BPE in BART's layout (``<s>`` 0, ``<pad>`` 1, ``</s>`` 2,
    ``<unk>`` 3) learned by `tokenizers`: ``(tokenizer, vocab, merges)``."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=["<s>", "<pad>", "</s>", "<unk>"], show_progress=False))
    model = json.loads(tok.to_str())["model"]
    return tok, model["vocab"], [m if isinstance(m, str) else " ".join(m)
                                 for m in model["merges"]]


def differing(reference, ids_per_text, texts):
    return [t for t, ids in zip(texts, ids_per_text) if reference.encode(t).ids != ids]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--vocab-size", type=int, default=600)
    p.add_argument("--train", type=int, default=2000, help="DialogSum dialogues to learn from")
    args = p.parse_args()

    import keras_hub
    import tensorflow as tf

    from zoo.data import dialogsum_pairs

    from quality import hardware

    reference, vocab, merges = learn(
        [d for d, _ in dialogsum_pairs("train", limit=args.train)], args.vocab_size)
    hub = keras_hub.tokenizers.BytePairTokenizer(vocabulary=vocab, merges=merges)
    texts = [s for pair in dialogsum_pairs("dev") for s in pair] + EDGE_CASES
    in_graph = tf.function(lambda x: hub._tokenize_tf(x))(tf.constant(texts)).to_list()
    paths = {"KerasHub, in a graph (`_tokenize_tf`)": [[int(i) for i in r] for r in in_graph],
             "KerasHub, eager on Python strings": [[int(i) for i in hub(t)] for t in texts]}
    print(hardware())
    print(f"\nbyte-level BPE of {len(vocab)} pieces; {len(texts)} texts "
          f"({len(EDGE_CASES)} edge cases)\n")
    print("| KerasHub path | texts differing from `tokenizers` | first one |")
    print("|---|---|---|")
    for name, ids in paths.items():
        bad = differing(reference, ids, texts)
        print(f"| {name} | {len(bad)} | {repr(bad[0][:40]) if bad else '-'} |")


if __name__ == "__main__":
    main()
