"""Attention heat maps: people read alignments as pictures."""

from __future__ import annotations

import os
from typing import Optional, Sequence

import numpy as np


def attention(weights, source_tokens: Sequence[str], target_tokens: Sequence[str], path: str,
              title: Optional[str] = None) -> str:
    """Writes an alignment heat map (PNG): targets down the side, sources along the top.

    Args:
        weights: ``(Tq, Tv)`` attention weights (array or tensor); ``(heads, Tq, Tv)`` is
            averaged over heads. Padding beyond the token counts is cropped.
        source_tokens: The ``Tv`` source tokens (columns).
        target_tokens: The ``Tq`` target tokens (rows).
        path: Where to write the PNG; parent folders are created.
        title: Optional title.

    Returns:
        ``path``.

    Raises:
        ValueError: When the weights are not 2-D/3-D, are smaller than the token lists, or
            contain NaN.

    Example:
        >>> import numpy as np, tempfile, os
        >>> p = attention(np.eye(2), ["hola", "mundo"], ["hello", "world"],
        ...               os.path.join(tempfile.mkdtemp(), "a.png"))
        >>> p.endswith("a.png")
        True
    """
    w = np.asarray(weights, dtype="float32")
    if w.ndim == 3:
        w = w.mean(axis=0)
    if w.ndim != 2:
        raise ValueError(f"weights must be (target_len, source_len) or (heads, target_len, "
                         f"source_len), got shape {np.asarray(weights).shape}")
    source_tokens, target_tokens = list(source_tokens), list(target_tokens)
    if not source_tokens or not target_tokens:
        raise ValueError("source_tokens and target_tokens must not be empty")
    if w.shape[0] < len(target_tokens) or w.shape[1] < len(source_tokens):
        raise ValueError(
            f"weights of shape {w.shape} cannot cover {len(target_tokens)} target tokens (rows) "
            f"x {len(source_tokens)} source tokens (columns)")
    w = w[:len(target_tokens), :len(source_tokens)]
    if not np.all(np.isfinite(w)):
        raise ValueError("weights contain NaN or infinity")

    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    cell = 0.45
    fig, ax = plt.subplots(figsize=(max(3.0, 1.5 + cell * len(source_tokens)),
                                    max(2.5, 1.2 + cell * len(target_tokens))))
    image = ax.imshow(w, cmap="viridis", vmin=0.0, vmax=max(1e-6, float(w.max())),
                      aspect="auto")
    ax.set_xticks(range(len(source_tokens)))
    ax.set_xticklabels(source_tokens, rotation=60, ha="left", rotation_mode="anchor")
    ax.xaxis.tick_top()
    ax.set_yticks(range(len(target_tokens)))
    ax.set_yticklabels(target_tokens)
    ax.set_xlabel("source")
    ax.set_ylabel("target")
    if title:
        ax.set_title(title, pad=40)
    fig.colorbar(image, ax=ax, fraction=0.04)
    fig.tight_layout()
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
