"""Interchangeable logistic-regression training backends behind one contract.

    from implementations import BACKENDS, TrainConfig, create_trainer

    trainer = create_trainer("numpy", TrainConfig(lr=0.01, n_iters=5000, dtype="float32"))
    trainer.prepare(X, y, w0, b0)   # untimed: validate, cast, move to device
    trainer.run()                   # timed: n_iters steps from (w0, b0), device synchronized
    res = trainer.result()          # TrainResult(w, b, losses), float64 on the host

The contract is written out on :class:`implementations.base.Trainer`.

**The registry is lazy.** ``BACKENDS`` maps a name to ``"module:Class"`` and imports the module
only when the class is asked for (``BACKENDS[name]``, :func:`get_backend`, :func:`create_trainer`),
so reading names (``list(BACKENDS)``) or importing ``implementations`` loads neither torch, JAX
nor numba. To add a backend, write one file with one ``Trainer`` subclass (its declared attributes
``library``, ``gradient``, ``engine``, ``compiled``, ``style`` say what it is) and register it with
one call, here or from your own code::

    register("my-backend", "my_package.my_module:MyTrainer")

Every conformance, equivalence and gradient test, the benchmark matrix and the report pick it up.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping

from .base import (DTYPES, FORMULATIONS, BackendUnavailableError, BatchSchedule, DeviceUnavailableError, Trainer,
                   TrainConfig, TrainResult, batch_schedule)

_SPECS: dict[str, str] = {}  # name -> "module:Class", in registration order (the matrix's order)
_LOADED: dict[str, type[Trainer]] = {}


def register(name: str, target: str | type[Trainer], *, replace: bool = False) -> None:
    """Register backend ``name`` as ``"package.module:Class"`` (imported when first used) or as a
    ``Trainer`` subclass. A name already taken is refused unless ``replace=True``."""
    if not isinstance(name, str) or not name or name != name.strip():
        raise ValueError(f"backend name must be a non-empty string without surrounding spaces, got {name!r}")
    if name in _SPECS and not replace:
        raise ValueError(f"backend {name!r} is already registered (as {_SPECS[name]}); pass replace=True to replace it")
    if isinstance(target, type):
        if not issubclass(target, Trainer):
            raise ValueError(f"backend {name!r} must be a Trainer subclass, got {target.__name__}")
        _SPECS[name] = f"{target.__module__}:{target.__qualname__}"
        _LOADED[name] = target
        return
    if not isinstance(target, str) or target.count(":") != 1 or not all(target.split(":")):
        raise ValueError(f"backend {name!r} must be given as 'package.module:Class', got {target!r}")
    _SPECS[name] = target
    _LOADED.pop(name, None)


def unregister(name: str) -> None:
    """Remove ``name`` from the registry (a test's trial backend, say)."""
    _SPECS.pop(name, None)
    _LOADED.pop(name, None)


def get_backend(name: str) -> type[Trainer]:
    """The ``Trainer`` class registered as ``name``, importing its module on first use.
    ValueError lists the registered names if ``name`` is not one of them."""
    if not isinstance(name, str) or name not in _SPECS:
        raise ValueError(f"backend must be one of {sorted(_SPECS)}, got {name!r}")
    cls = _LOADED.get(name)
    if cls is None:
        module, _, attr = _SPECS[name].partition(":")
        try:
            obj = importlib.import_module(module)
            for part in attr.split("."):
                obj = getattr(obj, part)
        except ImportError as exc:  # an optional library that is not installed: the row is skipped
            raise BackendUnavailableError(f"backend {name!r} cannot be imported from {_SPECS[name]}: "
                                          f"{type(exc).__name__}: {exc}") from None
        except AttributeError:
            raise ValueError(f"backend {name!r}: module {module!r} has no {attr!r}") from None
        if not (isinstance(obj, type) and issubclass(obj, Trainer)):
            raise ValueError(f"backend {name!r}: {_SPECS[name]} is not a Trainer subclass")
        cls = _LOADED[name] = obj
    return cls


def backend_spec(name: str) -> str:
    """Where ``name`` comes from: ``"module:Class"``."""
    if name not in _SPECS:
        raise ValueError(f"backend must be one of {sorted(_SPECS)}, got {name!r}")
    return _SPECS[name]


class _Registry(Mapping):
    """``BACKENDS``: a read-only, lazy view of the registry (name -> Trainer class)."""

    def __getitem__(self, name):
        if name not in _SPECS:
            raise KeyError(name)
        return get_backend(name)

    def __iter__(self):
        return iter(list(_SPECS))

    def __len__(self):
        return len(_SPECS)

    def __contains__(self, name):
        return name in _SPECS

    def __repr__(self):
        return f"BACKENDS({list(_SPECS)})"


BACKENDS: Mapping[str, type[Trainer]] = _Registry()


def create_trainer(name: str, config: TrainConfig) -> Trainer:
    """Instantiate the registered backend ``name``; ValueError lists the registered ones."""
    return get_backend(name)(config)


# the seed-faithful entries
register("numpy", "implementations.numpy_backend:NumpyTrainer")
register("torch", "implementations.torch_autograd:TorchTrainer")
register("torch-manual", "implementations.torch_manual:TorchManualTrainer")
# each library at its best, and the compiled references for the physical limit
register("numpy-fused", "implementations.numpy_fused:NumpyFusedTrainer")
register("torch-fused", "implementations.torch_fused:TorchFusedTrainer")
register("torch-compiled", "implementations.torch_compiled:TorchCompiledTrainer")
register("numba", "implementations.numba_backend:NumbaTrainer")
# as users write it, and the alternative library (skipped where JAX is not installed)
register("torch-nn", "implementations.torch_nn:TorchNNTrainer")
register("jax", "implementations.jax_backend:JaxTrainer")
# data-parallel (config.workers ranks): torch.distributed and Dask
register("torch-ddp", "implementations.torch_ddp:TorchDDPTrainer")
register("numpy-dask", "implementations.numpy_dask:NumpyDaskTrainer")


__all__ = [
    "BACKENDS", "DTYPES", "FORMULATIONS", "BackendUnavailableError", "BatchSchedule", "batch_schedule",
    "DeviceUnavailableError", "Trainer", "TrainConfig", "TrainResult", "backend_spec", "create_trainer",
    "get_backend", "register", "unregister",
]
