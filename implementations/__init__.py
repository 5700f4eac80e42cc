"""Interchangeable logistic-regression training backends behind one contract.

    from implementations import BACKENDS, TrainConfig, create_trainer

    trainer = create_trainer("numpy", TrainConfig(lr=0.01, n_iters=5000, dtype="float32"))
    trainer.prepare(X, y, w0, b0)   # untimed: validate, cast, move to device
    trainer.run()                   # timed: n_iters steps from (w0, b0), device synchronized
    res = trainer.result()          # TrainResult(w, b, losses), float64 on the host

The contract is written out on :class:`implementations.base.Trainer`. To add a backend, write one
file with one ``Trainer`` subclass and add it to ``BACKENDS`` below: every conformance, equivalence
and gradient test, and the benchmark matrix, pick it up from this dict.
"""

from __future__ import annotations

from .base import (DTYPES, FORMULATIONS, BackendUnavailableError, BatchSchedule, DeviceUnavailableError, Trainer,
                   TrainConfig, TrainResult, batch_schedule)
from .jax_backend import JaxTrainer
from .numba_backend import NumbaTrainer
from .numpy_backend import NumpyTrainer
from .numpy_dask import NumpyDaskTrainer
from .numpy_fused import NumpyFusedTrainer
from .torch_autograd import TorchTrainer
from .torch_compiled import TorchCompiledTrainer
from .torch_ddp import TorchDDPTrainer
from .torch_manual import TorchManualTrainer
from .torch_nn import TorchNNTrainer

BACKENDS: dict[str, type[Trainer]] = {
    # the seed-faithful entries
    "numpy": NumpyTrainer,
    "torch": TorchTrainer,
    "torch-manual": TorchManualTrainer,
    # each library at its best, and the compiled reference for the physical limit
    "numpy-fused": NumpyFusedTrainer,
    "torch-compiled": TorchCompiledTrainer,
    "numba": NumbaTrainer,
    # as users write it, and the alternative library (optional: skipped where JAX is not installed)
    "torch-nn": TorchNNTrainer,
    "jax": JaxTrainer,
    # data-parallel (config.workers ranks): torch.distributed and Dask
    "torch-ddp": TorchDDPTrainer,
    "numpy-dask": NumpyDaskTrainer,
}


def create_trainer(name: str, config: TrainConfig) -> Trainer:
    """Instantiate the registered backend ``name``; ValueError lists the registered ones."""
    try:
        cls = BACKENDS[name]
    except (KeyError, TypeError):
        raise ValueError(f"backend must be one of {sorted(BACKENDS)}, got {name!r}") from None
    return cls(config)


__all__ = [
    "BACKENDS", "DTYPES", "FORMULATIONS", "BackendUnavailableError", "BatchSchedule", "batch_schedule", "DeviceUnavailableError", "Trainer", "TrainConfig",
    "TrainResult", "create_trainer",
]
