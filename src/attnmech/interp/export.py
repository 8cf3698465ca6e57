"""An attnmech attention layer as a TransformerLens ``HookedTransformer``, and back.

attnmech's layer scores key position ``t`` against the query (last) token by
``x_t^T W x_T`` and attends with ``softmax(X W x_T)`` (:mod:`attnmech.layer.model`). A
TransformerLens
head scores ``q . k / attn_scale`` with ``q = x_T W_Q + b_Q`` and ``k = x_t W_K + b_K``, so it
computes the same thing when

    W_Q = W^T,  W_K = I (d_head = d_model = d),  b_Q = b_K = 0,  no attention scale,

no LayerNorm, and positional embeddings that are zero. :func:`to_hooked_transformer` builds that
1-layer attention-only model in float64 with ``W_E`` = the dataset's embeddings;
:func:`from_hooked_transformer` reads ``W = (W_Q W_K^T)^T / attn_scale`` back from any head and
refuses (or, with ``strict=False``, warns) when the head has parts a ``d x d`` matrix cannot hold.

The value/output path is set to ``W_V = W_O = I`` and ``W_U = E^T``: the model's logits are
``E (x_T + X^T s)`` (TransformerLens always adds the residual stream ``x_T``), which is the
``gen`` head of :mod:`attnmech.layer.model` plus that skip term. Only the attention pattern is
claimed
to be exact.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from .._io import atomic_path
from ..data.dataset import Dataset, OneHotEmbeddings
from ..errors import FileFormatError, InvalidDatasetError, InvalidParameterError
from ._tl import is_hooked_transformer, quiet, transformer_lens

__all__ = [
    "to_hooked_transformer",
    "from_hooked_transformer",
    "last_position_patterns",
    "attnmech_patterns",
    "save_hooked_transformer",
    "load_hooked_transformer",
]


def _weight_matrix(W: Any, trial: int | None) -> np.ndarray:
    """``W`` as a (d, d) float64 array from an array or a TrainResult (with a trial index)."""
    source = getattr(W, "W", W)  # a TrainResult carries its final W
    arr = np.asarray(source, dtype=np.float64)
    if arr.ndim == 3:
        if trial is None:
            if arr.shape[0] != 1:
                raise InvalidParameterError(
                    f"W holds {arr.shape[0]} trials (shape {arr.shape}); pass trial=i to pick one"
                )
            trial = 0
        if not 0 <= int(trial) < arr.shape[0]:
            raise InvalidParameterError(f"trial {trial} is outside [0, {arr.shape[0]})")
        arr = arr[int(trial)]
    elif trial not in (None, 0):
        raise InvalidParameterError(f"W is a single (d, d) matrix; trial={trial} does not apply")
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1]:
        raise InvalidParameterError(f"W must be a square (d, d) matrix, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise InvalidParameterError("W has non-finite entries (nan or inf)")
    return arr


def _embedding_matrix(embeddings: Any) -> np.ndarray:
    if isinstance(embeddings, Dataset):
        embeddings = embeddings.embedding_table
    if isinstance(embeddings, OneHotEmbeddings):
        return embeddings.to_dense(limit_bytes=2**30)
    E = np.asarray(embeddings, dtype=np.float64)
    if E.ndim != 2:
        raise InvalidDatasetError(f"embeddings must have shape (K, d), got {E.shape}")
    return E


def to_hooked_transformer(
    W: Any,
    embeddings: Any,
    *,
    trial: int | None = None,
    n_ctx: int = 1024,
) -> Any:
    """A 1-layer attention-only ``HookedTransformer`` whose head is attnmech's ``W``.

    Parameters
    ----------
    W : array-like of shape (d, d) or (B, d, d), or a :class:`~attnmech.layer.training.TrainResult`
        The combined key-query matrix (``score_t = x_t^T W x_T``).
    embeddings : array-like of shape (K, d), OneHotEmbeddings or Dataset
        Become ``W_E`` (and ``W_U = E^T``).
    trial : int, optional
        Which trial of a batched ``W`` (required when it holds more than one).
    n_ctx : int, default=1024
        Longest sequence the model accepts.

    Returns
    -------
    transformer_lens.HookedTransformer
        float64, ``n_layers=1``, ``n_heads=1``, ``d_head = d_model = d``, ``attn_only=True``,
        ``normalization_type=None``, ``use_attn_scale=False``, ``W_pos = 0``, all biases 0.
        ``blocks.0.attn.hook_pattern[:, 0, -1]`` equals ``softmax(X W x_T)``.

    Raises
    ------
    MissingDependencyError
        transformer-lens is not installed (``pip install 'attnmech[interp]'``).
    """
    tl = transformer_lens()
    import torch

    Wm = _weight_matrix(W, trial)
    E = _embedding_matrix(embeddings)
    K, d = E.shape
    if Wm.shape[0] != d:
        raise InvalidParameterError(
            f"W is {Wm.shape[0]} x {Wm.shape[0]} but the embeddings have dimension {d}"
        )
    if not isinstance(n_ctx, int | np.integer) or n_ctx < 1:
        raise InvalidParameterError(f"n_ctx must be a positive integer, got {n_ctx!r}")
    cfg = tl.HookedTransformerConfig(
        n_layers=1,
        d_model=d,
        d_head=d,
        n_heads=1,
        n_ctx=int(n_ctx),
        d_vocab=K,
        attn_only=True,
        normalization_type=None,
        use_attn_scale=False,
        positional_embedding_type="standard",
        default_prepend_bos=False,
        dtype=torch.float64,
        act_fn=None,
    )
    with quiet():
        model = tl.HookedTransformer(cfg)
    eye = torch.eye(d, dtype=torch.float64)
    state = model.state_dict()
    values = {
        "embed.W_E": torch.tensor(E),
        "pos_embed.W_pos": torch.zeros(int(n_ctx), d, dtype=torch.float64),
        "blocks.0.attn.W_Q": torch.as_tensor(Wm.T.copy())[None],
        "blocks.0.attn.W_K": eye[None].clone(),
        "blocks.0.attn.W_V": eye[None].clone(),
        "blocks.0.attn.W_O": eye[None].clone(),
        "blocks.0.attn.b_Q": torch.zeros(1, d, dtype=torch.float64),
        "blocks.0.attn.b_K": torch.zeros(1, d, dtype=torch.float64),
        "blocks.0.attn.b_V": torch.zeros(1, d, dtype=torch.float64),
        "blocks.0.attn.b_O": torch.zeros(d, dtype=torch.float64),
        "unembed.W_U": torch.as_tensor(E.T.copy()),
        "unembed.b_U": torch.zeros(K, dtype=torch.float64),
    }
    for name, value in values.items():
        state[name] = value.to(state[name].dtype).reshape(state[name].shape)
    model.load_state_dict(state)
    model.eval()
    return model


def _require_model(model: Any) -> None:
    if not is_hooked_transformer(model):
        raise InvalidParameterError(
            f"expected a transformer_lens.HookedTransformer, got {type(model).__name__}"
        )


def _check_head(model: Any, layer: int, head: int) -> tuple[int, int]:
    _require_model(model)
    L, H = int(model.cfg.n_layers), int(model.cfg.n_heads)
    if not 0 <= int(layer) < L:
        raise InvalidParameterError(f"layer {layer} is outside [0, {L}) for this model")
    if not 0 <= int(head) < H:
        raise InvalidParameterError(f"head {head} is outside [0, {H}) for this model")
    return int(layer), int(head)


def from_hooked_transformer(
    model: Any, layer: int = 0, head: int = 0, *, strict: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Read a head back as attnmech's ``(W, embeddings)``.

    ``W = (W_Q W_K^T)^T / attn_scale`` (so ``x_t^T W x_q`` is the head's pre-softmax score without
    biases) and ``embeddings = W_E``, both float64 numpy arrays.

    Parameters
    ----------
    model : HookedTransformer
    layer, head : int
    strict : bool, default=True
        The pair reproduces the head's scores exactly only for layer 0 of a model without
        LayerNorm, with zero positional embeddings and zero query/key biases (the scores of later
        layers also depend on what earlier layers wrote). ``True`` raises InvalidParameterError
        naming the part that breaks this; ``False`` returns the bilinear part anyway.

    Returns
    -------
    W : ndarray of shape (d_model, d_model)
    embeddings : ndarray of shape (d_vocab, d_model)
    """
    layer, head = _check_head(model, layer, head)
    attn = model.blocks[layer].attn
    W_Q = attn.W_Q[head].detach().to("cpu").double().numpy()  # (d_model, d_head)
    W_K = attn.W_K[head].detach().to("cpu").double().numpy()
    scale = float(attn.attn_scale) if model.cfg.use_attn_scale else 1.0
    W = (W_Q @ W_K.T).T / scale
    E = model.W_E.detach().to("cpu").double().numpy()
    if strict:
        problems = []
        if layer != 0:
            problems.append(f"layer {layer} reads what earlier layers wrote")
        if model.cfg.normalization_type is not None:
            problems.append(f"LayerNorm ({model.cfg.normalization_type})")
        if model.cfg.positional_embedding_type != "standard":
            problems.append(f"{model.cfg.positional_embedding_type} positions")
        elif float(model.W_pos.detach().abs().max()) != 0.0:
            problems.append("non-zero positional embeddings")
        for name in ("b_Q", "b_K"):
            if float(getattr(attn, name)[head].detach().abs().max()) != 0.0:
                problems.append(f"non-zero {name}")
        if problems:
            raise InvalidParameterError(
                "this head is not an attnmech layer (" + "; ".join(problems) + "); use "
                "head_scores for its token-level score table, or strict=False for the bilinear "
                "part W_Q W_K^T alone"
            )
    return W, E


def _length_groups(dataset: Dataset) -> dict[int, np.ndarray]:
    lengths = dataset.lengths
    return {int(n): np.flatnonzero(lengths == n) for n in np.unique(lengths)}


def last_position_patterns(
    model: Any, dataset: Dataset, layer: int = 0, head: int = 0, *, batch_size: int = 4096
) -> np.ndarray:
    """The head's attention from the last position of every sequence of ``dataset``.

    Returns
    -------
    ndarray of shape (n_samples, max_length)
        ``hook_pattern[:, head, -1, :]`` of each sequence, 0 past its end (float64).
    """
    layer, head = _check_head(model, layer, head)
    import torch

    if dataset.max_length > int(model.cfg.n_ctx):
        raise InvalidDatasetError(
            f"sequences of length {dataset.max_length} exceed the model's n_ctx={model.cfg.n_ctx}"
        )
    if dataset.vocab_size > int(model.cfg.d_vocab):
        raise InvalidDatasetError(
            f"the dataset has {dataset.vocab_size} tokens, the model's vocabulary "
            f"{model.cfg.d_vocab}"
        )
    padded = dataset.padded()
    out = np.zeros(padded.shape, dtype=np.float64)
    hook = f"blocks.{layer}.attn.hook_pattern"
    for length, rows in _length_groups(dataset).items():
        for start in range(0, rows.size, batch_size):
            part = rows[start : start + batch_size]
            tokens = torch.as_tensor(padded[part, :length])
            with torch.no_grad(), quiet():
                _, cache = model.run_with_cache(tokens, names_filter=hook)
            out[part, :length] = cache[hook][:, head, -1, :].double().cpu().numpy()
    return out


def attnmech_patterns(W: Any, dataset: Dataset, *, trial: int | None = None) -> np.ndarray:
    """attnmech's own ``softmax(X W x_T)`` for every sequence (shape (n, max_length), 0 padded)."""
    from ..layer.model import run_with_cache

    _, cache = run_with_cache(_weight_matrix(W, trial), dataset)
    attention = cache["attention"].double().cpu().numpy()
    return np.where(dataset.padded_mask(), attention, 0.0)


def save_hooked_transformer(model: Any, path: str | os.PathLike[str]) -> Path:
    """Write a HookedTransformer's config and weights to one ``.pt`` file (atomically).

    :func:`load_hooked_transformer` (and ``attnmech heads``) reads it back. The file holds plain
    tensors and a config of strings and numbers (read with ``torch.load(weights_only=True)``).
    """
    _require_model(model)
    import torch

    cfg: dict[str, Any] = {}
    for key, value in model.cfg.to_dict().items():
        if key == "dtype":
            cfg[key] = str(value).replace("torch.", "")
        elif isinstance(value, np.generic):
            cfg[key] = value.item()
        elif isinstance(value, str | int | float | bool | type(None)):
            cfg[key] = value
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    target = Path(path)
    with atomic_path(target) as tmp:
        torch.save({"format": "attnmech-hooked-v1", "cfg": cfg, "state_dict": state}, tmp)
    return target


def load_hooked_transformer(path: str | os.PathLike[str]) -> Any:
    """Read a model written by :func:`save_hooked_transformer`."""
    tl = transformer_lens()
    import torch

    try:
        blob = torch.load(Path(path), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as exc:  # torch raises many kinds for a damaged or foreign file
        raise FileFormatError(f"{path}: not a saved HookedTransformer ({exc})") from None
    if not isinstance(blob, dict) or blob.get("format") != "attnmech-hooked-v1":
        raise FileFormatError(
            f"{path}: not written by attnmech.interp.save_hooked_transformer (no format tag)"
        )
    cfg = dict(blob["cfg"])
    cfg["dtype"] = getattr(torch, str(cfg.get("dtype", "float32")))
    known = set(tl.HookedTransformerConfig.__dataclass_fields__)
    derived = {"d_vocab_out", "n_params", "tokenizer_name"}
    with quiet():
        config = tl.HookedTransformerConfig(
            **{k: v for k, v in cfg.items() if k in known and k not in derived}
        )
        model = tl.HookedTransformer(config)
    model.load_state_dict(blob["state_dict"], strict=True)
    model.eval()
    return model
