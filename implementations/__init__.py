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

**Other people's backends**, without editing this project. Wherever a backend name is accepted, a
*spec* is too (:func:`resolve`): a registered name; ``package.module:Class`` (an importable module);
``path/to/file.py:Class`` (a file, imported under a private module name); and pip-installed
plugins register themselves through the entry-point group ``logreg_bench.backends``
(``my-name = "my_package.module:MyTrainer"`` in the plugin's ``pyproject.toml``), read when the
registry is first listed — the plugin's module itself is imported only when used.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
from collections.abc import Mapping

from .base import (
    DTYPES,
    FORMULATIONS,
    OPTIMIZERS,
    BackendUnavailableError,
    DeviceUnavailableError,
    TrainConfig,
    Trainer,
    TrainResult,
)
from .schedule import BatchSchedule, batch_schedule

ENTRY_POINT_GROUP = "logreg_bench.backends"
_SPECS: dict[str, str] = {}  # name -> "module:Class", in registration order (the matrix's order)
_LOADED: dict[str, type[Trainer]] = {}
_ORIGIN: dict[str, str] = {}  # name -> where it came from: built-in, register(), entry point, file
_PLUGINS_READ = False


def register(name: str, target: str | type[Trainer], *, replace: bool = False, origin: str = "register()") -> None:
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
        _ORIGIN[name] = origin
        return
    if not isinstance(target, str) or target.count(":") != 1 or not all(target.split(":")):
        raise ValueError(f"backend {name!r} must be given as 'package.module:Class', got {target!r}")
    _SPECS[name] = target
    _LOADED.pop(name, None)
    _ORIGIN[name] = origin


def unregister(name: str) -> None:
    """Remove ``name`` from the registry (a test's trial backend, say)."""
    _SPECS.pop(name, None)
    _LOADED.pop(name, None)
    _ORIGIN.pop(name, None)


def _read_plugins() -> None:
    """Register the entry points of ``logreg_bench.backends`` (once; a built-in name wins)."""
    global _PLUGINS_READ
    if _PLUGINS_READ:
        return
    _PLUGINS_READ = True
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in _SPECS:
            continue
        dist = getattr(getattr(ep, "dist", None), "name", None)
        try:
            register(ep.name, ep.value, origin=f"entry point ({dist or 'a package'})")
        except ValueError:  # a malformed entry point: listed nowhere, refused when named
            continue


def _load_file(path: str, attr: str, spec: str) -> type:
    """Import ``attr`` from the Python file ``path`` under a private module name."""
    if not os.path.isfile(path):
        raise ValueError(f"backend {spec!r}: no such file {path!r}")
    real = os.path.realpath(path)
    modname = "_logreg_bench_user_" + hashlib.sha256(real.encode()).hexdigest()[:12]
    module = sys.modules.get(modname)
    if module is None:
        mspec = importlib.util.spec_from_file_location(modname, real)
        if mspec is None or mspec.loader is None:
            raise ValueError(f"backend {spec!r}: {path!r} cannot be imported as Python")
        module = importlib.util.module_from_spec(mspec)
        sys.modules[modname] = module
        try:
            mspec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(modname, None)
            raise
    return getattr(module, attr)


def resolve(spec: str) -> str:
    """The registered name for a backend ``spec``: a registered name (entry-point plugins
    included), ``package.module:Class`` or ``path/to/file.py:Class``. A spec that is not yet
    registered is registered under the spec itself, so rows name exactly what the user typed.
    ValueError (one line: what was expected, what came) for anything else."""
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"backend must be a registered name, 'package.module:Class' or 'path/file.py:Class', "
                         f"got {spec!r}")
    if spec in _SPECS:
        return spec
    _read_plugins()
    if spec in _SPECS:
        return spec
    if spec.count(":") != 1 or not all(spec.split(":")):
        raise ValueError(f"backend must be one of {sorted(_SPECS)}, 'package.module:Class' or "
                         f"'path/file.py:Class', got {spec!r}")
    target, _, attr = spec.partition(":")
    if target.endswith(".py") or os.sep in target or "/" in target:
        try:
            cls = _load_file(target, attr, spec)
        except AttributeError:
            raise ValueError(f"backend {spec!r}: {target!r} defines no {attr!r}") from None
        except ValueError:
            raise
        except Exception as exc:
            raise ValueError(f"backend {spec!r}: importing {target!r} failed: {type(exc).__name__}: {exc}") from None
        if not (isinstance(cls, type) and issubclass(cls, Trainer)):
            raise ValueError(f"backend {spec!r}: {attr!r} must be a subclass of implementations.Trainer, got {cls!r}")
        register(spec, cls, origin=f"file {target}")
        _SPECS[spec] = spec
    else:
        register(spec, spec, origin=f"module {target}")
        try:
            get_backend(spec)  # import now: a bad spec is refused before any work
        except ValueError:
            unregister(spec)
            raise
    return spec


def origin(name: str) -> str:
    """Where backend ``name`` came from: built-in, register(), an entry point, a module or a file."""
    return _ORIGIN.get(name, "?")


def get_backend(name: str) -> type[Trainer]:
    """The ``Trainer`` class registered as ``name``, importing its module on first use.
    ValueError lists the registered names if ``name`` is not one of them."""
    if isinstance(name, str) and name not in _SPECS:
        _read_plugins()
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
        _read_plugins()
        return iter(list(_SPECS))

    def __len__(self):
        _read_plugins()
        return len(_SPECS)

    def __contains__(self, name):
        _read_plugins()
        return name in _SPECS

    def __repr__(self):
        return f"BACKENDS({list(_SPECS)})"


BACKENDS: Mapping[str, type[Trainer]] = _Registry()


def create_trainer(name: str, config: TrainConfig) -> Trainer:
    """Instantiate the registered backend ``name``; ValueError lists the registered ones."""
    return get_backend(name)(config)


# the seed-faithful entries
register("numpy", "implementations.numpy_backend:NumpyTrainer", origin="built-in")
register("torch", "implementations.torch_autograd:TorchTrainer", origin="built-in")
register("torch-manual", "implementations.torch_manual:TorchManualTrainer", origin="built-in")
# each library at its best, and the compiled references for the physical limit
register("numpy-fused", "implementations.numpy_fused:NumpyFusedTrainer", origin="built-in")
register("torch-fused", "implementations.torch_fused:TorchFusedTrainer", origin="built-in")
register("torch-compiled", "implementations.torch_compiled:TorchCompiledTrainer", origin="built-in")
register("numba", "implementations.numba_backend:NumbaTrainer", origin="built-in")
# as users write it, and the alternative library (skipped where JAX is not installed)
register("torch-nn", "implementations.torch_nn:TorchNNTrainer", origin="built-in")
register("jax", "implementations.jax_backend:JaxTrainer", origin="built-in")
# data-parallel (config.workers ranks): torch.distributed and Dask
register("torch-ddp", "implementations.torch_ddp:TorchDDPTrainer", origin="built-in")
register("numpy-dask", "implementations.numpy_dask:NumpyDaskTrainer", origin="built-in")
# what a user would pick instead of a loop: scikit-learn's LogisticRegression (optimizer "solver" only)
register("sklearn-lbfgs", "implementations.sklearn_backend:SklearnTrainer", origin="built-in")
register("sklearn-newton-cholesky", "implementations.sklearn_backend:SklearnNewtonCholeskyTrainer", origin="built-in")


__all__ = [
    "BACKENDS", "DTYPES", "FORMULATIONS", "OPTIMIZERS", "BackendUnavailableError", "BatchSchedule", "batch_schedule",
    "DeviceUnavailableError", "ENTRY_POINT_GROUP", "Trainer", "TrainConfig", "TrainResult", "backend_spec",
    "create_trainer", "get_backend", "origin", "register", "resolve", "unregister",
]
