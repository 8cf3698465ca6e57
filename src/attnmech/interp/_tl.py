"""Loading TransformerLens lazily, with a clear error when the ``interp`` extra is missing."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from typing import Any

from ..errors import MissingDependencyError

INSTALL_HINT = "install the extra: pip install 'attnmech[interp]' (transformer-lens>=3.9,<4)"


def transformer_lens() -> Any:
    """The ``transformer_lens`` module, or MissingDependencyError saying how to install it."""
    try:
        with quiet():
            import transformer_lens
    except ImportError as exc:
        raise MissingDependencyError(
            f"attnmech.interp needs transformer-lens, which is not importable ({exc}); "
            + INSTALL_HINT
        ) from None
    return transformer_lens


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence TransformerLens 3.x's deprecation notice for ``HookedTransformer`` (kept in 3.x)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*HookedTransformer is deprecated.*")
        warnings.filterwarnings("ignore", category=DeprecationWarning, module="transformer_lens")
        warnings.filterwarnings("ignore", category=FutureWarning, module="transformer_lens")
        yield


def is_hooked_transformer(model: Any) -> bool:
    """True when ``model`` is a TransformerLens ``HookedTransformer`` (without importing it)."""
    return any(cls.__name__ == "HookedTransformer" for cls in type(model).__mro__)
