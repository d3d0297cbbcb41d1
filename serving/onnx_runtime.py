"""Translate with an ONNX export (``zoo.export.export_onnx``) on onnxruntime, without TensorFlow."""

from __future__ import annotations

import json
import os
from typing import List, Sequence

from zoo.serving.tokenizer import HostTokenizer


class OnnxTranslator:
    """Loads an ONNX export directory and translates strings.

    Args:
        path: The directory written by ``zoo.export.export_onnx``.
        providers: onnxruntime execution providers (default: CPU).

    Example (needs an export):
        ``OnnxTranslator("model-onnx").translate(["Tengo hambre."], beam=True)``
    """

    def __init__(self, path: str, providers=None):
        import onnxruntime as ort

        manifest_path = os.path.join(path, "manifest.json")
        if not os.path.exists(manifest_path):
            raise FileNotFoundError(f"{path} is not an ONNX export (no manifest.json)")
        with open(manifest_path) as f:
            self.manifest = json.load(f)
        if self.manifest.get("format") != "onnx":
            raise ValueError(f"{manifest_path}: format {self.manifest.get('format')!r}, "
                             f"expected 'onnx'")
        files = self.manifest["files"]
        self.tokenizer = HostTokenizer(os.path.join(path, files["tokenizer"]))
        providers = providers or ["CPUExecutionProvider"]
        self._sessions = {}
        for key in ("greedy", "beam", "encoder", "decoder_step"):
            self._sessions[key] = ort.InferenceSession(os.path.join(path, files[key]),
                                                       providers=providers)

    def _run(self, key, feeds):
        sess = self._sessions[key]
        return dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds)))

    def generate(self, source_ids, beam: bool = False) -> dict:
        """Ids ``(batch, S)`` -> ``tokens``, ``lengths``, ``scores``, ``attention``."""
        return self._run("beam" if beam else "greedy", {"source_ids": source_ids})

    def translate(self, texts: Sequence[str], beam: bool = False) -> List[str]:
        """Strings -> strings (greedy, or the beam search fixed at export)."""
        ids = self.tokenizer.encode(texts)
        return self.tokenizer.decode(self.generate(ids, beam)["tokens"])

    def encode(self, source_ids) -> dict:
        """The initial decoder state and the memory (``memory__...``), named as in the
        manifest's ``state`` and ``memory``."""
        return self._run("encoder", {"source_ids": source_ids})

    def decode_step(self, token_ids, inputs: dict) -> dict:
        """One step.

        Args:
            token_ids: ``(batch,)`` int32, the previous tokens.
            inputs: The state and the memory by name: ``encode``'s output, with the state
                replaced by the previous step's ``next__<name>`` outputs.

        Returns:
            ``logits``, ``attention`` and ``next__<name>`` for every state tensor.
        """
        return self._run("decoder_step", {"token_ids": token_ids, **inputs})
