"""``torch-nn``: PyTorch as its tutorials write it — ``nn.Linear``, an ``nn`` loss, ``torch.optim.SGD``
and, with mini-batches, a ``DataLoader`` over a ``TensorDataset``.

One step (``model = nn.Linear(d, 1)``, weight ``(1, d)`` and bias ``(1,)`` set from ``(w0, b0)``)::

    optimizer.zero_grad()
    loss = nn.BCELoss()(torch.sigmoid(model(xb)), yb)   # probs  (logs clamped at -100, as F.binary_cross_entropy)
    loss = nn.BCEWithLogitsLoss()(model(xb), yb)        # logits
    loss.backward()
    optimizer.step()                                    # θ ← θ - lr (∇loss + weight_decay θ)

The math is the ``torch`` backend's (autograd through the same functional losses; see its docstring for
the ``probs`` saturation gap). ``nn`` losses use ``reduction="mean"``: ``1/m`` over the batch.

L2 (``l2 = λ``). ``SGD(weight_decay=λ)`` adds ``λ θ`` to each parameter's gradient before the step,
which is the gradient of ``(λ/2) ||θ||^2``. SGD's ``weight_decay`` would also decay the bias, but the
contract penalises ``w`` only, so the optimizer gets two parameter groups (as tutorials do to exclude
biases from decay)::

    SGD([{"params": [model.weight], "weight_decay": λ},
         {"params": [model.bias], "weight_decay": 0.0}], lr=lr)

so ``w ← w - lr (∇_w BCE + λ w)`` and ``b ← b - lr ∇_b BCE``: the contract's update exactly.
``momentum``/``nesterov`` are the same groups in ``SGD(..., momentum=0.9, nesterov=...)``; ``adam`` is
``torch.optim.Adam(groups, lr=lr)`` (betas, eps by default; ``weight_decay=λ`` on ``w`` adds ``λ w`` to
the gradient before the moments: L2 in the loss, not AdamW's decoupled decay). ``run()`` clears the
optimizer's state (``optimizer.state.clear()``) before its first step. The ``nn``
loss does not contain the penalty, so the *recorded* loss adds ``(λ/2) ||w||^2`` under ``no_grad`` at the
step's parameters (before ``step()``): the optimizer path stays as a user writes it.

Mini-batches (``batch_size = B``). ``DataLoader(TensorDataset(X, y), batch_size=B, sampler=sampler)``
where ``sampler`` is a :class:`ScheduleSampler`: a user's ``shuffle=True`` (``RandomSampler``) replaced by
the shared schedule's permutation of the current epoch, selected with ``sampler.set_epoch(epoch)`` as one
does for ``DistributedSampler``. The loop is the tutorial's ``for epoch ...: for xb, yb in loader:``.
Because the sampler yields one epoch's permutation per ``iter(loader)``, the loader's own batching
(``batch_size=B, drop_last=False``) cuts exactly the schedule's batches, including the short last one
of each epoch; a single sampler over the flat schedule would instead merge an epoch's leftover rows with
the next epoch's first ones. (``batch_sampler=`` yielding ``schedule[t]`` would also be exact, but is not
what users write.) ``tests/test_minibatch.py`` checks the batches equal ``schedule[t]``. Per batch the
loader fetches ``B`` rows one by one (``TensorDataset.__getitem__``) and stacks them
(``default_collate``): that is the cost this row shows. ``batch_size=None``: the model sees the whole
tensors every step, no ``DataLoader``.

The loop is the tutorial's ``for xb, yb in loader: ... optimizer.step()``, written out here rather
than through :mod:`implementations._loop`: how a user writes it is what this row measures.

``loss_and_grad(w, b)`` returns the penalised loss (``nn`` loss + ``(λ/2) ||w||^2``) and its autograd
gradient on the *full* prepared data, i.e. the direction ``optimizer.step()`` follows.

Softmax regression (``n_classes = K >= 3``): ``model = nn.Linear(d, K)`` (weight ``(K, d)`` = ``W0^T``,
bias ``(K,)``), int64 labels, and::

    loss = nn.CrossEntropyLoss()(model(xb), yb)                                   # logits
    loss = nn.NLLLoss()(torch.clamp(torch.log(F.softmax(model(xb), 1)), min=-100), yb)  # probs

(the clamp as in :func:`implementations._torch_common.softmax_loss`), the same two-group ``SGD`` and
loader. ``result()`` and ``loss_and_grad`` hand back ``W = weight^T (d, K)`` and its gradient transposed.

Sparse ``X`` (a SciPy matrix; a torch CSR tensor on the device). ``nn.Linear.forward`` (``F.linear``)
takes no sparse input, so the model is :class:`SparseLinear`: an ``nn.Linear`` (the same parameters,
the same optimizer groups) whose ``forward`` is ``torch.sparse.mm(x, weight.T) + bias``, the module
people write for bag-of-words input. The other route, ``nn.EmbeddingBag(d, K, mode="sum")`` fed the
CSR column indices, row offsets and ``per_sample_weights`` = the values, was measured once beside it on
an rcv1-shaped matrix and is no faster (``docs/performance.md``), and it needs the data re-expressed
as bags. Mini-batches: the same ``DataLoader`` and sampler over the row indices, with a ``collate_fn``
that gathers the batch's rows from the CSR arrays on the device (``TensorDataset`` cannot index a
sparse tensor).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Sampler, TensorDataset

from ._lbfgs import torch_lbfgs
from ._torch_common import TorchTrainerBase, synchronize, to_host
from .base import LOG_CLAMP


class SparseLinear(nn.Linear):
    """``nn.Linear`` for a sparse (CSR or COO) input batch: ``torch.sparse.mm(x, weight.T) + bias``."""

    def forward(self, x):
        return torch.sparse.mm(x, self.weight.T) + self.bias


class ScheduleSampler(Sampler[int]):
    """Yields epoch ``e``'s row order from the shared :class:`~implementations.base.BatchSchedule`
    (its flat indices hold one permutation of ``n`` rows per epoch; the last epoch may be cut short)."""

    def __init__(self, schedule):
        idx, n = schedule.indices, schedule.n
        self.epochs = [idx[start:start + n] for start in range(0, idx.size, n)]
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        return iter(self.epochs[self.epoch].tolist())  # RandomSampler also hands out a list's iterator

    def __len__(self) -> int:
        return len(self.epochs[self.epoch])


class TorchNNTrainer(TorchTrainerBase):
    name = "torch-nn"
    library = "torch"
    gradient = "autograd"
    engine = "eager"
    style = "nn.Module + optim + DataLoader"
    seed_shapes = True  # y as (n, 1) to match model(x)'s (m, 1); w0 (1, d) as nn.Linear's weight
    supports_multiclass = True  # K >= 3: nn.Linear(d, K), weight = W^T, nn.CrossEntropyLoss / nn.NLLLoss
    supports_sparse = True  # SparseLinear: torch.sparse.mm(x, weight.T) + bias
    optimizers = ("gd", "momentum", "nesterov", "adam")  # the real torch.optim.SGD(momentum=0.9, nesterov=...), Adam
    optimizers += ("lbfgs",)  # torch.optim.LBFGS(model.parameters(), line_search_fn="strong_wolfe"), one .step(closure)

    def _prepare(self, X, y, w0, b0):
        super()._prepare(X, y, w0, b0)
        cfg = self.config
        self.model = self._linear()
        if self.k >= 3:
            self.criterion = nn.NLLLoss() if cfg.formulation == "probs" else nn.CrossEntropyLoss()
        else:
            self.criterion = nn.BCELoss() if cfg.formulation == "probs" else nn.BCEWithLogitsLoss()
        groups = [{"params": [self.model.weight], "weight_decay": cfg.l2},
                  {"params": [self.model.bias], "weight_decay": 0.0}]
        if cfg.optimizer == "adam":  # betas (0.9, 0.999), eps 1e-8: the defaults; weight_decay = L2 in the loss
            self.optimizer = torch.optim.Adam(groups, lr=cfg.lr)
        elif cfg.optimizer in ("momentum", "nesterov"):  # dampening 0: the default
            self.optimizer = torch.optim.SGD(groups, lr=cfg.lr, momentum=0.9, nesterov=cfg.optimizer == "nesterov")
        else:
            self.optimizer = torch.optim.SGD(groups, lr=cfg.lr)
        self.loader = self.sampler = None
        if self.schedule is not None:
            self.sampler = ScheduleSampler(self.schedule)
            if self.sparse:  # row indices in, the batch's CSR rows out
                self.loader = DataLoader(range(self.n), batch_size=cfg.batch_size, sampler=self.sampler,
                                         drop_last=False, collate_fn=self._collate)
            else:
                self.loader = DataLoader(TensorDataset(self.X, self.y), batch_size=cfg.batch_size,
                                         sampler=self.sampler, drop_last=False)

    def _linear(self) -> nn.Linear:
        cls = SparseLinear if self.sparse else nn.Linear
        return cls(self.d, self.k if self.k >= 3 else 1, device=self.dev, dtype=self.X.dtype)

    def _collate(self, indices):
        """A sparse batch: ``(X_b, y_b)``, the rows gathered from the CSR arrays on the device."""
        rows = torch.tensor(indices, dtype=torch.int64).to(self.dev)
        return self.csr_batches.gather(rows)[0], self.y.index_select(0, rows)

    def _weight(self, w):
        """``w0``/``w`` as ``nn.Linear``'s weight: ``(1, d)`` already, or ``W^T`` ``(K, d)`` for K classes."""
        return w.T if self.k >= 3 else w

    def _loss(self, model, xb, yb):
        out = model(xb)
        if self.k >= 3:
            return self.criterion(torch.clamp(torch.log(F.softmax(out, 1)), min=LOG_CLAMP)
                                  if self.config.formulation == "probs" else out, yb)
        return self.criterion(torch.sigmoid(out) if self.config.formulation == "probs" else out, yb)

    def _batches(self):
        if self.loader is None:
            for _ in range(self.config.n_iters):
                yield self.X, self.y
            return
        for epoch in range(len(self.sampler.epochs)):
            self.sampler.set_epoch(epoch)
            yield from self.loader

    def _run(self):
        cfg, model, opt = self.config, self.model, self.optimizer
        with torch.no_grad():  # run() restarts from (w0, b0)
            model.weight.copy_(self._weight(self.w0))
            model.bias.copy_(self.b0)
        if cfg.optimizer == "lbfgs":
            return self._run_lbfgs(model)
        opt.state.clear()  # fresh optimizer state every run: momentum buffers, Adam's moments and step
        losses, step = [], 0
        for xb, yb in self._batches():
            opt.zero_grad()
            loss = self._loss(model, xb, yb)
            loss.backward()
            if step % cfg.record_every == 0:  # stays on the device: no per-step sync
                with torch.no_grad():
                    losses.append(loss.detach() + 0.5 * cfg.l2 * (model.weight * model.weight).sum()
                                  if cfg.l2 else loss.detach())
            opt.step()
            step += 1
        assert step == cfg.n_iters, (step, cfg.n_iters)
        self._w, self._b = self._weight(model.weight.detach()), model.bias.detach()  # copied to the host by result()
        self._losses = torch.stack(losses)
        synchronize(self.dev)

    def _run_lbfgs(self, model):
        """As a user writes it: ``opt = torch.optim.LBFGS(model.parameters(), lr=1, history_size=10,
        line_search_fn="strong_wolfe", ...)`` and one ``opt.step(closure)``; LBFGS has no per-group
        weight decay, so the closure adds ``(λ/2) ||weight||^2`` to the ``nn`` loss (the bias not penalised)."""
        l2 = self.config.l2

        def loss_fn():
            loss = self._loss(model, self.X, self.y)
            return loss + 0.5 * l2 * (model.weight * model.weight).sum() if l2 else loss

        trace = torch_lbfgs(list(model.parameters()), loss_fn, self.config)
        losses, self.point_times_s = trace.finish()
        self.evaluations, self.run_s = trace.evaluations, trace.run_s
        self._w, self._b = self._weight(model.weight.detach()), model.bias.detach()
        self._losses = torch.from_numpy(losses)
        synchronize(self.dev)

    def _loss_and_grad(self, w, b):
        model = self._linear()
        w, b = self._params(w, b)
        with torch.no_grad():
            model.weight.copy_(self._weight(w))
            model.bias.copy_(b)
        loss = self._loss(model, self.X, self.y)  # full data
        if self.config.l2:
            loss = loss + 0.5 * self.config.l2 * (model.weight * model.weight).sum()
        loss.backward()
        return to_host(loss), to_host(self._weight(model.weight.grad)), to_host(model.bias.grad)
