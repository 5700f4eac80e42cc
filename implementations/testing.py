"""The trainer contract as runnable checks, for your own trainer in your own test suite.

scikit-learn's ``check_estimator`` / ``parametrize_with_checks``, for :class:`implementations.Trainer`
subclasses: the checks the built-in backends pass, each a named function whose docstring says what
it checks, and — where scikit-learn only says *that* an estimator fails — the step where a training
loop first leaves the float64 oracle's path, and by how much::

    from implementations.testing import check_trainer, parametrize_with_checks

    @parametrize_with_checks([MyTrainer])          # one pytest test per (trainer, check)
    def test_my_trainer(trainer, check):           # ids: "MyTrainer-check_oracle_agreement[float32-probs]"
        check(trainer)

    check_trainer(MyTrainer)                       # all at once: AssertionError listing what failed

The checks (:func:`checks` lists them for a class):

* ``check_declared_attributes`` — what the class says it is (library, gradient, engine, ...) and what it
  supports (``supports_minibatch``, ``supports_l2``, ``devices``, ``dtypes``).
* ``check_call_order`` — ``run``/``loss_and_grad`` before ``prepare`` and ``result`` before ``run`` raise RuntimeError.
* ``check_result_shapes`` — ``result()`` is float64 on the host: ``w`` (d,), ``b`` a float, one loss per record.
* ``check_restart_from_w0`` — every ``run()`` starts again from ``(w0, b0)``; a new ``prepare`` replaces them.
* ``check_bad_input`` — bad ``X``, ``y``, ``w0``, ``b0`` and ``loss_and_grad`` points raise ValueError.
* ``check_loss_and_grad[probs|logits]`` — ``loss_and_grad`` against the float64 oracle's loss and
  central finite differences (float64, at the init and at a random point).
* ``check_oracle_agreement[dtype-formulation]`` (float32 and float64, both formulations), plus
  ``[...-batch32]`` (mini-batches), ``[...-l2]``, ``[...-k3]`` (softmax) and ``[...-momentum]`` etc.
  for what the class declares — a run's final parameters and whole loss history against the float64
  oracle (``implementations.reference``) within the harness's tolerance. When they differ, the failure
  names the **first divergent step** (:func:`first_divergence`: whole runs of increasing length
  against the oracle's, bisected, so a schedule or a momentum buffer goes wrong at its own step).

A case outside what the class declares it supports is skipped (``pytest.skip`` under pytest), not failed.
The data is Iris as the seed takes it (100 × 4) and the seed's init; ``lr = 0.01``."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import sys
import time
from dataclasses import dataclass, replace

import numpy as np

from . import get_backend, reference, resolve
from ._divergence import first_divergence, in_lockstep
from .base import DTYPES, FORMULATIONS, BackendUnavailableError, TrainConfig, Trainer, TrainResult
from .reference import Divergence
from .schedule import init_params

AGREEMENT_STEPS = 300  # full-batch steps of each agreement run (Iris, lr = 0.01)
MINIBATCH_STEPS, MINIBATCH_SIZE = 60, 32  # ~19 epochs of Iris' 100 rows in batches of 32 (the last one 4)
L2 = 0.05
CLASSES = 3  # the softmax check: all of Iris, three classes
LOCKSTEP_OPTIMIZERS = ("momentum", "nesterov", "adam")  # gd is every other agreement check's; L-BFGS and a
# solver follow no path the oracle can retrace (each its own line search): `bench run` judges them by the optimum
GRADIENTS = ("hand-derived", "autograd", "solver")  # solver: a library computes its own (scikit-learn)


class CheckSkipped(Exception):
    """The check does not apply: the case is outside what the trainer declares it supports."""


class CheckFailed(AssertionError):
    """A check's failure; ``divergence`` says where a loop left the oracle (agreement checks)."""

    def __init__(self, message: str, divergence: Divergence | None = None):
        super().__init__(message)
        self.divergence = divergence


# -- the shared problem ----------------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def iris_problem():
    """Iris as the seed takes it (versicolor = 0, virginica = 1), and the seed's init (float64 host arrays).

    Rows 50-149 of ``load_iris`` are versicolor then virginica; ``target[:100]`` (fifty 0s, fifty 1s) is
    reused as their labels on purpose, as the seed does."""
    from sklearn.datasets import load_iris  # scikit-learn is imported only when a check runs

    data, target = load_iris(return_X_y=True)
    X, y = data[50:150].astype(np.float64), target[:100].astype(np.float64)
    w0, b0 = init_params(X.shape[1], 0, 1.0)
    return X, y, np.asarray(w0, np.float64), float(b0)


@functools.lru_cache(maxsize=1)
def iris_3class_problem():
    """All of Iris (150 x 4, classes 0 1 2) and the seed's softmax init ``W0 (4, 3)``, ``b0 (3,)``, float64."""
    from sklearn.datasets import load_iris  # scikit-learn is imported only when a check runs

    X, y = load_iris(return_X_y=True)
    w0, b0 = init_params(X.shape[1], 0, 1.0, CLASSES)
    return X.astype(np.float64), y.astype(np.float64), np.asarray(w0, np.float64), np.asarray(b0, np.float64)


def _make(cls, config: TrainConfig) -> Trainer:
    """``cls(config)``; a config outside what it supports skips the check with its reason."""
    try:
        return cls(config)
    except BackendUnavailableError as exc:
        raise CheckSkipped(str(exc)) from None


def _train(cls, config: TrainConfig, X, y, w0, b0) -> TrainResult:
    with _make(cls, config) as trainer:
        trainer.prepare(X, y, w0, b0)
        trainer.run()
        return trainer.result()


def _shape(a) -> tuple:
    """The shape of what a loop returned (an ndarray, a tensor, a number)."""
    return tuple(getattr(a, "shape", None) if getattr(a, "shape", None) is not None else np.shape(a))


def _require(cond, message: str):
    if not cond:
        raise CheckFailed(message)


def _raises(exc_type, func, *args, match: str = "") -> str:
    """Call ``func(*args)``; '' if it raised ``exc_type`` (whose message contains ``match``), else what happened."""
    try:
        func(*args)
    except exc_type as exc:
        return "" if match.lower() in str(exc).lower() else f"raised {type(exc).__name__} without {match!r}: {exc}"
    except Exception as exc:
        return f"raised {type(exc).__name__} instead of {exc_type.__name__}: {exc}"
    return "did not raise"


# -- the checks ------------------------------------------------------------------------------------

def check_declared_attributes(cls):
    """The class says what it is — ``library`` (a non-empty str; the default "?" is allowed),
    ``gradient`` (hand-derived or autograd), ``engine`` (non-empty), ``compiled``/``data_parallel``
    (bools), ``style`` (str) — and what it supports: ``supports_minibatch``/``supports_l2`` (bools),
    ``devices`` (None or device kinds), ``dtypes`` (within float32, float64)."""
    _require(isinstance(cls, type) and issubclass(cls, Trainer),
             f"{cls!r} is not a subclass of implementations.Trainer")
    problems = []
    if not (isinstance(cls.library, str) and cls.library.strip()):
        problems.append(f"library must name whose arrays the step runs on (numpy, torch, ...), got {cls.library!r}")
    if cls.gradient not in GRADIENTS:
        problems.append(f"gradient must be one of {GRADIENTS}, got {cls.gradient!r}")
    if not (isinstance(cls.engine, str) and cls.engine.strip()):
        problems.append(f"engine must be a non-empty str, got {cls.engine!r}")
    for attr in ("compiled", "data_parallel", "supports_minibatch", "supports_l2"):
        if not isinstance(getattr(cls, attr), bool):
            problems.append(f"{attr} must be a bool, got {getattr(cls, attr)!r}")
    if not isinstance(cls.style, str):
        problems.append(f"style must be a str, got {cls.style!r}")
    if cls.devices is not None and not (isinstance(cls.devices, (tuple, list)) and
                                        all(d in ("cpu", "cuda", "mps") for d in cls.devices)):
        problems.append(f"devices must be None or a tuple of 'cpu', 'cuda', 'mps', got {cls.devices!r}")
    if not (isinstance(cls.dtypes, (tuple, list)) and cls.dtypes and set(cls.dtypes) <= set(DTYPES)):
        problems.append(f"dtypes must be a non-empty tuple within {DTYPES}, got {cls.dtypes!r}")
    _require(not problems, "; ".join(problems))


def check_call_order(cls):
    """``run()`` and ``loss_and_grad()`` before ``prepare()``, and ``result()`` before ``run()``, raise
    RuntimeError naming the missing call; after ``prepare`` and ``run`` all three work."""
    X, y, w0, b0 = iris_problem()
    with _make(cls, TrainConfig(n_iters=5, dtype=_dtype(cls))) as trainer:
        for what, func, args, match in (("run() before prepare()", trainer.run, (), "before run"),
                                        ("loss_and_grad() before prepare()", trainer.loss_and_grad, (w0, b0),
                                         "before loss_and_grad"),
                                        ("result() before run()", trainer.result, (), "before result")):
            got = _raises(RuntimeError, func, *args, match=match)
            _require(not got, f"{what} must raise RuntimeError, but it {got}")
        trainer.prepare(X, y, w0, b0)
        got = _raises(RuntimeError, trainer.result, match="before result")
        _require(not got, f"result() after prepare() but before run() must raise RuntimeError, but it {got}")
        trainer.run()
        trainer.result()
        trainer.loss_and_grad(w0, b0)


def check_result_shapes(cls):
    """``result()`` is a TrainResult on the host: ``w`` a (d,) float64 ndarray, ``b`` a float, ``losses``
    (ceil(n_iters / record_every),) float64 — with ``record_every = 3`` over 7 steps, 3 losses — all finite,
    and the parameters moved."""
    X, y, w0, b0 = iris_problem()
    config = TrainConfig(n_iters=7, record_every=3, dtype=_dtype(cls))
    with _make(cls, config) as trainer:
        trainer.prepare(X, y, w0, b0)
        trainer.run()
        returned = trainer._result()  # what the loop returns, before result() flattens it
        res = trainer.result()
    w_shape = _shape(returned[0]) if isinstance(returned, (tuple, list)) and len(returned) == 3 else None
    _require(w_shape in (None, (X.shape[1],)), f"_result() must return w of shape ({X.shape[1]},) (the contract's "
             f"(d,)), got {w_shape}: return a 1-D weight vector, e.g. w.reshape(-1)")
    _require(isinstance(res, TrainResult), f"result() must return a TrainResult, got {type(res).__name__}")
    _require(res.w.shape == (X.shape[1],), f"w must have shape ({X.shape[1]},), got {res.w.shape}")
    _require(res.losses.shape == (config.n_records,),
             f"losses must have shape ({config.n_records},) for 7 steps recorded every 3, got {res.losses.shape} "
             "(losses[i] is the loss of step i * record_every)")
    _require(np.all(np.isfinite(res.losses)) and np.all(np.isfinite(res.w)) and math.isfinite(res.b),
             f"the result must be finite, got w={res.w}, b={res.b}, losses={res.losses}")
    _require(not np.allclose(np.append(res.w, res.b), np.append(w0, b0)), "the parameters did not move in 7 steps")


def check_restart_from_w0(cls):
    """Two ``run()`` calls after one ``prepare`` give the same result (each starts again from ``(w0, b0)``),
    and a second ``prepare`` with another ``w0`` gives what a fresh trainer gives from it."""
    X, y, w0, b0 = iris_problem()
    config = TrainConfig(n_iters=20, dtype=_dtype(cls))
    w1, b1 = 0.5 * w0[::-1].copy(), -b0
    with _make(cls, config) as trainer:
        trainer.prepare(X, y, w0, b0)
        trainer.run()
        first = trainer.result()
        trainer.run()
        second = trainer.result()
        _require(np.array_equal(first.w, second.w) and first.b == second.b and
                 np.array_equal(first.losses, second.losses),
                 f"a second run() must start again from (w0, b0) and give the same result: w {first.w} then "
                 f"{second.w}, first loss {first.losses[0]:.6g} then {second.losses[0]:.6g}")
        trainer.prepare(X, y, w1, b1)
        trainer.run()
        again = trainer.result()
    fresh = _train(cls, config, X, y, w1, b1)
    _require(np.allclose(again.w, fresh.w, rtol=1e-6, atol=1e-7) and math.isclose(again.b, fresh.b, rel_tol=1e-6,
                                                                                   abs_tol=1e-7),
             f"after prepare() with a new w0 the run must start from it: got w {again.w}, a fresh trainer {fresh.w}")


def check_bad_input(cls):
    """Bad input raises ValueError (not another error, not silence): ``y`` with values other than 0/1,
    ``X`` not 2-D, NaN in ``X``, ``y`` of the wrong length, ``w0`` of the wrong shape, a non-scalar ``b0``,
    and a ``loss_and_grad`` point of the wrong shape."""
    X, y, w0, b0 = iris_problem()
    Xnan = X.copy()
    Xnan[3, 1] = np.nan
    with _make(cls, TrainConfig(n_iters=3, dtype=_dtype(cls))) as trainer:
        cases = [("y with values {1, 2}", (X, y + 1, w0, b0)), ("X 1-D", (X[:, 0], y, w0, b0)),
                 ("NaN in X", (Xnan, y, w0, b0)), ("y of the wrong length", (X, y[:-1], w0, b0)),
                 ("w0 of the wrong shape", (X, y, w0[:-1], b0)), ("b0 of shape (2,)", (X, y, w0, np.array([b0, b0])))]
        problems = [f"prepare with {what} {got}" for what, args in cases
                    if (got := _raises(ValueError, trainer.prepare, *args))]
        trainer.prepare(X, y, w0, b0)
        got = _raises(ValueError, trainer.loss_and_grad, w0[:-1], b0)
        if got:
            problems.append(f"loss_and_grad with w of the wrong shape {got}")
    _require(not problems, "bad input must raise ValueError: " + "; ".join(problems))


def check_loss_and_grad(cls, formulation: str):
    """``loss_and_grad(w, b)`` in float64, at the init and at a random point: the loss equals the float64
    oracle's (rel 1e-10) and the gradient equals central finite differences of it (rel 1e-7) and the
    oracle's exact ``(X^T (p - y) / n, mean(p - y))`` (rel 1e-9)."""
    X, y, w0, b0 = iris_problem()
    if "float64" not in tuple(cls.dtypes):
        raise CheckSkipped(f"{cls.__name__} declares dtypes {tuple(cls.dtypes)}: the gradient is checked in float64")
    rng = np.random.default_rng(1)
    points = [("the init", w0, b0), ("a random point", 0.3 * rng.standard_normal(X.shape[1]), 0.1)]
    problems = []
    with _make(cls, TrainConfig(n_iters=1, dtype="float64", formulation=formulation)) as trainer:
        trainer.prepare(X, y, w0, b0)
        for where, w, b in points:
            loss, gw, gb = trainer.loss_and_grad(w, b)
            if gw.shape != w.shape:
                problems.append(f"at {where}: grad_w has shape {gw.shape}, expected {w.shape}")
                continue
            ref_loss = reference.loss(X, y, w, b, formulation)
            ref_w, ref_b = reference.grad(X, y, w, b)
            ref, got = np.append(ref_w, ref_b), np.append(gw, gb)
            fd = reference.finite_difference(X, y, w, b, formulation)
            scale = max(np.abs(ref).max(), np.finfo(float).tiny)
            if not abs(loss - ref_loss) <= 1e-10 * max(abs(ref_loss), 1.0):
                problems.append(f"at {where}: loss {loss:.12g}, the oracle's {ref_loss:.12g}")
            for against, want, rtol in (("finite differences", fd, 1e-7), ("the oracle's exact gradient", ref, 1e-9)):
                err = np.abs(got - want)
                if not err.max() / scale <= rtol:
                    j = int(np.nanargmax(err))
                    coord = "dL/db" if j == w.size else f"dL/dw[{j}]"
                    problems.append(f"at {where}: {coord} = {got[j]:.8g}, {against} {want[j]:.8g} (rel "
                                    f"{err.max() / scale:.2e} > {rtol:g})")
                    break
    _require(not problems, f"{formulation} loss_and_grad (float64): " + "; ".join(problems))


def check_oracle_agreement(cls, dtype: str, formulation: str, batch_size: int | None = None, l2: float = 0.0,
                           n_classes: int = 2, optimizer: str = "gd"):
    """A ``dtype`` run (``formulation``; full batch, or mini-batches of ``batch_size``; penalty ``l2``;
    ``n_classes`` 3: softmax on all of Iris; ``optimizer``) agrees with the float64 oracle — final
    parameters and the whole loss history within the harness's tolerance ``u sqrt(K) (1 + d + log2 m)``;
    if not, the failure names the first divergent step (and a mini-batch run that matches the full-batch
    oracle is said to ignore the batch schedule)."""
    X, y, w0, b0 = iris_problem() if n_classes < 3 else iris_3class_problem()
    steps = AGREEMENT_STEPS if batch_size is None else MINIBATCH_STEPS
    config = TrainConfig(lr=0.01, n_iters=steps, dtype=dtype, formulation=formulation, batch_size=batch_size, l2=l2,
                         n_classes=n_classes, optimizer=optimizer)
    _make(cls, config).close()  # skipped here when unsupported
    what = _describe(config)
    try:
        res = _train(cls, config, X, y, w0, b0)
    except CheckSkipped:
        raise
    except Exception as exc:  # the loop's own error: this check's failure, said with what was run
        raise CheckFailed(f"{what}: the run raised {type(exc).__name__}: {exc}") from None
    ref = reference.reference_run(X, y, w0, b0, config)
    tol = reference.config_tolerance(config, X.shape[0], X.shape[1])
    if res.w.shape != ref.w.shape or res.losses.shape != ref.losses.shape:
        raise CheckFailed(f"{what}: result() has w of shape {res.w.shape} and losses of shape {res.losses.shape}, "
                          f"expected {ref.w.shape} and {ref.losses.shape}")
    agreement = reference.compare(res, ref, tol)
    if agreement.ok:
        return agreement
    where = first_divergence(cls, config, X, y, w0, b0)
    located = (f"wrong from step {where.step}: {where}; " if where and where.what == "parameters" else
               f"{where}; " if where else "no single step is beyond its tolerance; ")
    raise CheckFailed(f"{what}: {_ignores_schedule(res, config, X, y, w0, b0)}{located}after {steps} steps rel "
                      f"Δparam {agreement.rel_dparam:.2e}, rel Δloss {agreement.rel_dloss:.2e} (tolerance {tol:.2e})",
                      where)


def _ignores_schedule(res: TrainResult, config: TrainConfig, X, y, w0, b0) -> str:
    """For a mini-batch run that matches the full-batch oracle: that it ignores the schedule, and what to do."""
    if config.batch_size is None:
        return ""
    full = replace(config, batch_size=None)
    if not reference.compare(res, reference.reference_run(X, y, w0, b0, full),
                             reference.config_tolerance(full, X.shape[0], X.shape[1])).ok:
        return ""
    return ("it ignores the batch schedule: its mini-batch run matches the full-batch oracle, so every step "
            "trains on all rows; take step t's rows from self.schedule[t] (indices into X), or declare "
            "supports_minibatch = False on the class to run full batch only; ")


def _describe(config: TrainConfig) -> str:
    parts = [config.dtype, config.formulation,
             "full batch" if config.batch_size is None else f"mini-batches of {config.batch_size}"]
    if config.l2:
        parts.append(f"l2={config.l2:g}")
    if config.n_classes >= 3:
        parts.append(f"softmax K={config.n_classes} (all of Iris)")
    if config.optimizer != "gd":
        parts.append(config.optimizer)
    return " ".join(parts)


def _dtype(cls) -> str:
    """A dtype the class supports (float32 first, the seed's)."""
    return next((d for d in DTYPES if d in tuple(cls.dtypes)), "float32")


# -- the list, and the ways to run it --------------------------------------------------------------

@dataclass(frozen=True)
class Check:
    """One check of one kind, with its parameters: ``check(cls)`` runs it (under pytest an unsupported
    case becomes ``pytest.skip``); ``check.id`` names it, ``check.description`` says what it checks."""

    func: object
    params: tuple = ()

    @property
    def name(self) -> str:
        return self.func.__name__

    @property
    def id(self) -> str:
        return self.name + (f"[{'-'.join(_param_id(k, v) for k, v in self.params)}]" if self.params else "")

    @property
    def description(self) -> str:
        return " ".join((self.func.__doc__ or "").split())

    def run(self, cls):
        """Run the check; CheckFailed / CheckSkipped / the trainer's own exception propagate."""
        return self.func(cls, **dict(self.params))

    def __call__(self, cls):
        try:
            return self.run(cls)
        except CheckSkipped as exc:
            if "pytest" in sys.modules:
                import pytest  # a test dependency: imported only under pytest

                pytest.skip(str(exc))
            raise

    def __repr__(self) -> str:
        return self.id


def _param_id(key: str, v) -> str:
    if key == "l2":
        return "l2" if v else "no-l2"
    if key == "batch_size":
        return f"batch{v}"
    if key == "n_classes":
        return f"k{v}"
    return str(v)


def checks(cls=None) -> list[Check]:
    """The checks of ``cls``, in the order they run: the contract's, and the oracle's for both dtypes and
    formulations, mini-batches and L2 (one outside what a class supports skips when run), plus one for
    each capability it declares beyond them — softmax (``supports_multiclass``) and each of momentum,
    Nesterov and Adam in ``optimizers``. Without a class: every check."""
    out = [Check(check_declared_attributes), Check(check_call_order), Check(check_result_shapes),
           Check(check_restart_from_w0), Check(check_bad_input)]
    out += [Check(check_loss_and_grad, (("formulation", f),)) for f in FORMULATIONS]
    out += [Check(check_oracle_agreement, (("dtype", dt), ("formulation", f))) for dt in DTYPES for f in FORMULATIONS]
    out.append(Check(check_oracle_agreement, (("dtype", "float32"), ("formulation", "probs"),
                                              ("batch_size", MINIBATCH_SIZE))))
    out.append(Check(check_oracle_agreement, (("dtype", "float64"), ("formulation", "logits"), ("l2", L2))))
    if cls is None or cls.supports_multiclass:
        out.append(Check(check_oracle_agreement, (("dtype", "float64"), ("formulation", "logits"),
                                                  ("n_classes", CLASSES))))
    out += [Check(check_oracle_agreement, (("dtype", "float64"), ("formulation", "logits"), ("optimizer", opt)))
            for opt in LOCKSTEP_OPTIMIZERS if cls is None or opt in tuple(cls.optimizers)]
    return out


@dataclass
class CheckResult:
    """What one check said: ``status`` pass / fail / skip, the message, where a loop diverged."""

    check: str
    description: str
    status: str
    message: str = ""
    divergence: Divergence | None = None
    seconds: float = 0.0

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        div = d.pop("divergence")
        d.update(first_divergent_step=div["step"] if div else None, divergence_rel=div["rel"] if div else None,
                 divergence_abs=div["abs"] if div else None)
        return d


def run_checks(cls, on_result=None, guard=None) -> list[CheckResult]:
    """Run every check on ``cls`` and return what each said (never raises for a check's failure: a
    trainer's own exception is that check's failure, with its type and message). ``on_result(r)`` is
    called as each ends; ``guard()``, a context manager around each check (a time limit, say)."""
    cls = _as_class(cls)
    results = []
    for check in checks(cls):
        start = time.perf_counter()
        try:
            with guard() if guard is not None else contextlib.nullcontext():
                check.run(cls)
            r = CheckResult(check.id, check.description, "pass")
        except CheckSkipped as exc:
            r = CheckResult(check.id, check.description, "skip", str(exc))
        except CheckFailed as exc:
            r = CheckResult(check.id, check.description, "fail", str(exc), exc.divergence)
        except Exception as exc:  # the trainer raised where it should not
            r = CheckResult(check.id, check.description, "fail", f"raised {type(exc).__name__}: {exc}")
        r.seconds = time.perf_counter() - start
        results.append(r)
        if on_result is not None:
            on_result(r)
    return results


def check_trainer(cls) -> list[CheckResult]:
    """Run every check on ``cls`` (a Trainer subclass, or a backend spec for :func:`implementations.resolve`);
    AssertionError listing each failure (and the first divergent step) if any fails, else the results."""
    results = run_checks(cls)
    failed = [r for r in results if r.status == "fail"]
    if failed:
        raise AssertionError(f"{_as_class(cls).__name__} fails {len(failed)} of {len(results)} checks:\n"
                             + "\n".join(f"  {r.check}: {r.message}" for r in failed))
    return results


def parametrize_with_checks(trainers):
    """A ``pytest.mark.parametrize("trainer, check", ...)`` over every check of every class in
    ``trainers`` (classes, or specs), with ids ``"<Class>-<check id>"``; the test body is ``check(trainer)``."""
    import pytest  # a test dependency: imported only when asked for pytest parameters

    classes = [_as_class(t) for t in trainers]
    params = [pytest.param(cls, check, id=f"{cls.__name__}-{check.id}") for cls in classes for check in checks(cls)]
    return pytest.mark.parametrize("trainer, check", params)


def _as_class(obj) -> type:
    if isinstance(obj, str):
        return get_backend(resolve(obj))
    if not (isinstance(obj, type) and issubclass(obj, Trainer)):
        raise ValueError(f"trainer must be a subclass of implementations.Trainer or a backend spec, got {obj!r}")
    return obj


__all__ = ["Check", "CheckFailed", "CheckResult", "CheckSkipped", "Divergence", "check_bad_input", "check_call_order",
           "check_declared_attributes", "check_loss_and_grad", "check_oracle_agreement", "check_restart_from_w0",
           "check_result_shapes", "check_trainer", "checks", "first_divergence", "in_lockstep", "iris_3class_problem",
           "iris_problem", "parametrize_with_checks", "run_checks"]
