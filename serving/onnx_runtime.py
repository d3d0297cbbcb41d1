"""Translate with an ONNX export (``zoo.export.export_onnx``) on onnxruntime, without TensorFlow."""

from __future__ import annotations

import json
import os
from typing import List, Optional, Sequence

import numpy as np

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

    def generate(self, source_ids, beam: bool = False, length_penalty: Optional[float] = None,
                 coverage_penalty: Optional[float] = None) -> dict:
        """Ids ``(batch, S)`` -> ``tokens``, ``lengths``, ``scores``, ``attention``.

        Args:
            source_ids: ``(batch, S)`` int32, 0-padded, eos included.
            beam: Beam search (of the size fixed at export) instead of greedy.
            length_penalty: GNMT alpha for beam search (default: the export's).
            coverage_penalty: GNMT beta for beam search (default: the export's).
        """
        if not beam:
            if length_penalty is not None or coverage_penalty is not None:
                raise ValueError("length_penalty and coverage_penalty apply to beam=True")
            return self._run("greedy", {"source_ids": source_ids})
        feeds = {"source_ids": source_ids}
        for name, value in (("length_penalty", length_penalty),
                            ("coverage_penalty", coverage_penalty)):
            value = self.manifest.get(name, 0.0) if value is None else value
            if not value >= 0:
                raise ValueError(f"{name} must be >= 0, got {value}")
            feeds[name] = np.asarray(value, np.float32)
        return self._run("beam", feeds)

    def translate(self, texts: Sequence[str], beam: bool = False,
                  length_penalty: Optional[float] = None,
                  coverage_penalty: Optional[float] = None) -> List[str]:
        """Strings -> strings (greedy, or beam search; options as in ``generate``)."""
        ids = self.tokenizer.encode(texts)
        return self.tokenizer.decode(
            self.generate(ids, beam, length_penalty, coverage_penalty)["tokens"])

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
