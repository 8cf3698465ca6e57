"""Real attention heads read as token priorities (optional extra ``attnmech[interp]``).

- :mod:`.export`: an attnmech layer ``W`` as a 1-layer attention-only TransformerLens
  ``HookedTransformer`` and back (attention pattern equal to ``softmax(X W x_T)``);
- :mod:`.scores`: a head's token-level score table ``scores[q, k]`` and per-query orders;
- :mod:`.compare`: that table against the data's token-priority graphs (``strict_edge_agreement``,
  ``kendall_tau``, ``scc_ari``);
- :mod:`.pinning`: the training edges whose active Graph-SVM constraints pin a priority;
- :mod:`.transformers`: small TransformerLens models trained on next-token windows;
- :mod:`.bert`: the Q/K maps of a BERT-style safetensors checkpoint (all-MiniLM-L6-v2).

Importing this package loads neither torch nor transformer-lens; functions that need
transformer-lens raise :class:`~attnmech.errors.MissingDependencyError` when it is absent.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "to_hooked_transformer": "export",
    "from_hooked_transformer": "export",
    "last_position_patterns": "export",
    "attnmech_patterns": "export",
    "save_hooked_transformer": "export",
    "load_hooked_transformer": "export",
    "head_scores": "scores",
    "head_qk": "scores",
    "priority_order": "scores",
    "score_fidelity": "scores",
    "ScoreFidelity": "scores",
    "compare_priorities": "compare",
    "PriorityComparison": "compare",
    "kendall_tau_b": "compare",
    "adjusted_rand_index": "compare",
    "tie_clusters": "compare",
    "explain": "pinning",
    "Explanation": "pinning",
    "PinningConstraint": "pinning",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'attnmech.interp' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
