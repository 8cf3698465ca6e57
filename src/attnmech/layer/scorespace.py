"""Gradient descent of the ``iden`` head's log loss run on the attention scores, for many small
trials at once (the training behind :func:`attnmech.layer.training.train_final`).

The combined model's score of position ``t`` of sample ``i`` is ``s_it = x_it^T W x_iq``, linear
in ``W``: ``s = Phi vec(W)`` with one row ``vec(x_it x_iq^T)`` per position. The gradient of the
risk in ``W`` is ``G = Phi^T g`` (``g``: the risk's gradient in the scores), so a step
``W <- W - c G`` moves the scores by ``-c H g`` with the positions' Gram matrix ``H = Phi Phi^T``,
``H[(i,t), (j,u)] = (x_it^T x_ju) (x_iq^T x_jq)``, and ``||G||_F^2 = g^T H g``. For a trial of
``n`` samples of length ``T`` the whole step is then a handful of operations on ``n T`` scores
and one ``(n T) x (n T)`` product, instead of products with the ``d x d`` weights and the
embeddings (:class:`~attnmech.layer.model.IdentityLogGradient`). ``W`` itself is rebuilt once,
at the end: ``W = W_0 - Phi^T a`` with ``a`` the sum of the steps ``c g``.

The loss terms are those of :class:`~attnmech.layer.model.AttentionObjective` (the same
``gap = logsumexp(other scores) - label score - log(label count)`` and ``q = sigmoid(gap)``),
so the result equals :func:`~attnmech.layer.training.train` up to round-off (a relative 1e-12 or
better in ``tests/test_fast_train.py``).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from .model import AttentionInputs

__all__ = ["ScoreSpaceDescent", "score_space_supported", "MAX_POSITIONS"]

MAX_POSITIONS = 64  # n * T per trial above which the positions' Gram matrix costs too much


def score_space_supported(inputs: AttentionInputs) -> bool:
    """Whether :class:`ScoreSpaceDescent` applies to ``inputs``: dense embeddings, at most
    :data:`MAX_POSITIONS` positions per trial, and the label present in every sample that
    carries weight (else the loss is infinite and :func:`~attnmech.layer.training.train` is the
    reference)."""
    if inputs.onehot:
        return False
    B, n, T = inputs.tokens.shape
    if n * T > MAX_POSITIONS:
        return False
    weighted = inputs.weights > 0
    return bool((inputs.label_mask.any(-1) | ~weighted).all())


class ScoreSpaceDescent:
    """Gradient descent (``normalized=False``) or normalised gradient descent of the log-loss
    risk of the ``iden`` head, combined model, run on the scores (module docstring).

    Parameters
    ----------
    inputs : AttentionInputs
        From :func:`~attnmech.layer.model.inputs_from_datasets`; must satisfy
        :func:`score_space_supported`.
    W0 : Tensor of shape (B, d, d)
        The starting weights (not modified).
    normalized : bool
        True: ``W <- W - lr G / ||G||_F`` per trial (no step where ``G = 0``), as
        :class:`~attnmech.layer.optim.NormalizedGradientDescent` with ``eps = 0``; False:
        ``W <- W - lr G``.

    Every buffer is allocated here; :meth:`step` allocates only a few small temporaries.
    """

    def __init__(self, inputs: AttentionInputs, W0: Tensor, *, normalized: bool) -> None:
        if not score_space_supported(inputs):
            raise ValueError(
                "ScoreSpaceDescent needs dense embeddings, few positions per trial "
                "and the label in every weighted sample"
            )
        E = inputs.embeddings  # (B, K, d)
        B, n, T = inputs.tokens.shape
        dtype, device = E.dtype, E.device
        self.normalized = normalized
        self.shape = (B, n, T)
        self.W0 = W0
        p = n * T
        trial = torch.arange(B, device=device)[:, None]
        tokens = inputs.tokens.clamp_min(0).reshape(B, p)
        queries = inputs.queries[:, :, None].expand(B, n, T).reshape(B, p)
        real = inputs.mask.reshape(B, p)
        self.X = E[trial, tokens]  # (B, p, d): x_it (padding: token 0, masked below)
        self.Xq = E[trial, queries]  # (B, p, d): x_iq
        # the positions' Gram matrix, built from exactly symmetric products
        gram_x = (self.X[:, :, None, :] * self.X[:, None, :, :]).sum(-1)
        gram_q = (self.Xq[:, :, None, :] * self.Xq[:, None, :, :]).sum(-1)
        self.H = torch.where(real[:, :, None] & real[:, None, :], gram_x * gram_q, 0.0)
        # scores of W0 (0 on padding, which no step changes: H is 0 there)
        scores = torch.einsum("bpd,bde,bpe->bp", self.X, W0.to(dtype), self.Xq)
        self.s = torch.where(real, scores, 0.0).reshape(B, n, T).contiguous()
        # -inf on the label's positions and on padding: the "other" scores are s + other_inf
        self.other_inf = torch.zeros(B, n, T, dtype=dtype, device=device).masked_fill(
            inputs.label_mask | ~inputs.mask, -math.inf
        )
        # the label's gradient goes to its first position (all of them share one score row of H)
        arange_t = torch.arange(T, device=device)[None, None, :]
        first = torch.where(inputs.label_mask, arange_t, T).amin(-1)  # (B, n)
        self.label_pos = first.clamp_max(T - 1)[:, :, None].contiguous()  # (B, n, 1)
        self.log_count = torch.log(inputs.label_count)
        self.sample_weight = inputs.weights  # w_i (the full objective's -upstream)
        self.a = torch.zeros(B, p, dtype=dtype, device=device)  # sum of the steps c g
        # buffers reused every step
        self._other = torch.empty(B, n, T, dtype=dtype, device=device)
        self._shift = torch.empty(B, n, dtype=dtype, device=device)
        self._w = torch.empty(B, n, T, dtype=dtype, device=device)
        self._sum = torch.empty(B, n, dtype=dtype, device=device)
        self._label = torch.empty(B, n, 1, dtype=dtype, device=device)
        self._gap = torch.empty(B, n, dtype=dtype, device=device)
        self._q = torch.empty(B, n, dtype=dtype, device=device)
        self._coef = torch.empty(B, n, dtype=dtype, device=device)
        self._lq = torch.empty(B, n, 1, dtype=dtype, device=device)
        self.g = torch.empty(B, n, T, dtype=dtype, device=device)
        self._Hg = torch.empty(B, 1, p, dtype=dtype, device=device)

    def score_gradient(self, *, scaled: bool = False) -> Tensor:
        """The risk's gradient in the scores at the current step, ``g`` of shape (B, n, T)
        (overwritten by the next call).

        With ``scaled``, ``g`` divided per trial by its largest entry ``max_i w_i q_i`` (the
        label's entry of each sample has size ``w_i q_i``, the others ``w_i q_i`` times a
        softmax weight), so that ``g^T H g`` neither underflows nor overflows; the normalised
        step is the same for any positive multiple of ``g``.
        """
        s = self.s
        other = torch.add(s, self.other_inf, out=self._other)
        shift = torch.amax(other, -1, out=self._shift).nan_to_num_(neginf=0.0)  # no other: 0
        w = torch.sub(other, shift[..., None], out=self._w).exp_()
        total = torch.sum(w, -1, out=self._sum)  # >= 1 where another token sits, else 0
        label = torch.gather(s, 2, self.label_pos, out=self._label)[..., 0]
        # gap = shift + log(total) - label - log(count), as in the full objective
        gap = torch.log(total, out=self._gap).add_(shift).sub_(label).sub_(self.log_count)
        q = torch.sigmoid(gap, out=self._q)
        wq = torch.mul(self.sample_weight, q, out=self._coef)  # w_i q_i: the label's entry
        if scaled:
            wq.div_(wq.amax(-1, keepdim=True).clamp_min_(torch.finfo(wq.dtype).tiny))
        coef = torch.div(wq, total.clamp_min_(1.0), out=self._q)  # q is not needed any more
        g = torch.mul(w, coef[..., None], out=self.g)
        return g.scatter_(2, self.label_pos, torch.neg(wq[..., None], out=self._lq))

    def step(self, learning_rate: float) -> Tensor:
        """One update of every trial with rate ``learning_rate``; returns the ``g`` used (scaled
        per trial for normalised descent, see :meth:`score_gradient`)."""
        B, n, T = self.shape
        p = n * T
        g = self.score_gradient(scaled=self.normalized)
        flat = g.view(B, 1, p)
        Hg = torch.bmm(flat, self.H, out=self._Hg).view(B, p)  # H is symmetric
        s, flat = self.s.view(B, p), flat.view(B, p)
        if not self.normalized:
            s.add_(Hg, alpha=-learning_rate)
            self.a.add_(flat, alpha=learning_rate)
            return g
        norm_sq = torch.linalg.vecdot(flat, Hg)  # (B,): ||G||^2 of the scaled g
        # lr / ||G||; where ||G||^2 is 0 (or round-off below), lr: no step, as the step rule
        scale = norm_sq.rsqrt_().mul_(learning_rate).nan_to_num_(learning_rate, learning_rate)
        s.addcmul_(Hg, scale[:, None], value=-1.0)
        self.a.addcmul_(flat, scale[:, None])
        return g

    def run(self, learning_rate: float, num_steps: int, schedule: Any = None) -> None:
        """``num_steps`` updates; update ``t`` uses ``learning_rate * schedule.factor(t)``
        (None or a constant schedule: ``learning_rate``)."""
        constant = schedule is None or getattr(schedule, "name", "") == "constant"
        for t in range(num_steps):
            self.step(learning_rate if constant else learning_rate * schedule.factor(t))

    def weights(self) -> Tensor:
        """``W = W_0 - Phi^T a``: the weights after the steps taken, shape (B, d, d)."""
        step = torch.einsum("bp,bpd,bpe->bde", self.a, self.X, self.Xq)
        return self.W0.to(step.dtype) - step
