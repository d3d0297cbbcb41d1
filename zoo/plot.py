"""Attention heat maps: people read alignments as pictures."""

from __future__ import annotations

import os
from typing import Optional, Sequence

import numpy as np


def attention(weights, source_tokens: Sequence[str], target_tokens: Sequence[str], path: str,
              title: Optional[str] = None, p_gen=None) -> str:
    """Writes an alignment heat map (PNG): targets down the side, sources along the top.

    Args:
        weights: ``(Tq, Tv)`` attention weights (array or tensor); ``(heads, Tq, Tv)`` is
            averaged over heads. Padding beyond the token counts is cropped.
        source_tokens: The ``Tv`` source tokens (columns).
        target_tokens: The ``Tq`` target tokens (rows).
        path: Where to write the PNG; parent folders are created.
        title: Optional title.
        p_gen: Optional ``(Tq,)`` generation probabilities of a pointer-generator, drawn as a
            column beside the map (1: generated from the vocabulary, 0: copied).

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
    source_tokens, target_tokens = list(source_tokens), list(target_tokens)
    w, p_gen = _checked(weights, source_tokens, target_tokens, p_gen)
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    # Long sources (dialogues) get narrower columns, so the picture stays readable in width.
    n_src, n_tgt = len(source_tokens), len(target_tokens)
    cell = min(0.45, 24.0 / max(n_src, 1))
    size = (max(3.0, 2.5 + cell * n_src + (0.8 if p_gen is not None else 0)),
            max(2.5, 1.2 + 0.35 * n_tgt))
    if p_gen is None:
        fig, ax = plt.subplots(figsize=size)
        axes = ax
    else:
        fig, (ax, gen_ax) = plt.subplots(
            1, 2, figsize=size, sharey=True,
            gridspec_kw={"width_ratios": [cell * n_src, 0.45], "wspace": 0.02})
        _draw_p_gen(gen_ax, p_gen)
        axes = [ax, gen_ax]
    image = ax.imshow(w, cmap="viridis", vmin=0.0, vmax=max(1e-6, float(w.max())),
                      aspect="auto")
    ax.set_xticks(range(n_src))
    ax.set_xticklabels(source_tokens, rotation=60, ha="left", rotation_mode="anchor",
                       fontsize=10 if cell >= 0.3 else max(4, int(cell * 22)))
    ax.xaxis.tick_top()
    ax.set_yticks(range(n_tgt))
    ax.set_yticklabels(target_tokens)
    ax.set_xlabel("source")
    ax.set_ylabel("target")
    if title:
        ax.set_title(title, pad=40)
    fig.colorbar(image, ax=axes, fraction=0.03, pad=0.01)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def _checked(weights, source_tokens, target_tokens, p_gen):
    """The weights as a 2-D array cropped to the tokens, and ``p_gen`` cropped, or a
    ValueError that says what is wrong."""
    w = np.asarray(weights, dtype="float32")
    if w.ndim == 3:
        w = w.mean(axis=0)
    if w.ndim != 2:
        raise ValueError(f"weights must be (target_len, source_len) or (heads, target_len, "
                         f"source_len), got shape {np.asarray(weights).shape}")
    if not source_tokens or not target_tokens:
        raise ValueError("source_tokens and target_tokens must not be empty")
    if w.shape[0] < len(target_tokens) or w.shape[1] < len(source_tokens):
        raise ValueError(
            f"weights of shape {w.shape} cannot cover {len(target_tokens)} target tokens (rows) "
            f"x {len(source_tokens)} source tokens (columns)")
    w = w[:len(target_tokens), :len(source_tokens)]
    if not np.all(np.isfinite(w)):
        raise ValueError("weights contain NaN or infinity")
    if p_gen is not None:
        p_gen = np.asarray(p_gen, dtype="float32").reshape(-1)
        if p_gen.shape[0] < len(target_tokens) or not np.all(np.isfinite(p_gen)):
            raise ValueError(f"p_gen must hold a finite value per target token "
                             f"({len(target_tokens)}), got shape {p_gen.shape}")
        p_gen = p_gen[:len(target_tokens)]
    return w, p_gen


def _draw_p_gen(ax, p_gen) -> None:
    """The generation probabilities as a labelled column."""
    ax.imshow(p_gen[:, None], cmap="magma", vmin=0.0, vmax=1.0, aspect="auto")
    for i, v in enumerate(p_gen):
        ax.text(0, i, f"{v:.2f}", ha="center", va="center", fontsize=7,
                color="white" if v < 0.6 else "black")
    ax.set_xticks([0])
    ax.set_xticklabels(["p_gen"])
    ax.xaxis.tick_top()
