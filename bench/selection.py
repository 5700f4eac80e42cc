"""What a command line selects: its backends, devices, data sets, dtypes and penalties checked
(:func:`common`), and its cases, block by block from :mod:`bench.suites` (:func:`cases`); ``run --list``
prints them, ``run`` runs them."""

from __future__ import annotations

from implementations import DTYPES, FORMULATIONS, OPTIMIZERS

from . import argtypes, data, sparse_sweep, suites, time_to_model as ttm
from .argtypes import UsageError
from .cases import SEED_LR, default_backends, default_devices, default_lr, matrix, solver_only
from .suites import MINIBATCH_DATASET, MINIBATCH_SIZE, SOFTMAX_DATASETS

USER_OPTIMIZERS = tuple(o for o in OPTIMIZERS if o != "solver")  # "solver": scikit-learn's own, not a choice


def common(args, listing: bool = False):
    """The selection's backends, devices, datasets, dtypes, formulations and penalties, checked.
    ``listing``: only what ``--list`` needs (no torch to find devices, no data file read in full)."""
    args.backends_given = args.backends is not None
    args.backends = argtypes.backends(args.backends, default_backends)
    args.devices = argtypes.devices(args.devices) if args.devices else ("cpu",) if listing else default_devices()
    args.datasets_given = args.datasets is not None
    args.datasets = argtypes.datasets(args.datasets if args.datasets_given else args.default_datasets,
                                      args.label, args.positive, args.standardize, load=not listing,
                                      many_classes=args.allow_many_classes, dense=args.dense,
                                      n_features=args.n_features)
    if args.dtypes is not None:
        args.dtypes = argtypes.choices("--dtypes", args.dtypes, DTYPES)
    elif getattr(args, "kind", None) != "runs":  # run picks its dtypes by block (cases); grad, trajectory: both
        args.dtypes = DTYPES
    args.formulations = argtypes.choices("--formulations", args.formulations, FORMULATIONS)
    args.l2 = tuple(dict.fromkeys(args.l2))
    if getattr(args, "optimizers", None) is not None:
        args.optimizers = argtypes.choices("--optimizers", args.optimizers, USER_OPTIMIZERS)


def cases(args, lr=None, ttm_lr=default_lr):
    """The selection's cases, block by block (bench.suites); ``lr(dataset, l2)`` is the learning rate
    where --lr is not given, ``ttm_lr(dataset, l2, seed)`` the time-to-model block's 1/L."""
    sizes = tuple(dict.fromkeys(args.batch_sizes)) if args.batch_sizes else (None,)
    picked = blocks(args)
    reference = "all" in (getattr(args, "blocks", None) or ())  # --blocks all: the reference run
    dtypes = args.dtypes or (DTYPES if picked is None else
                             suites.REFERENCE_DTYPES if reference else suites.DEFAULT_DTYPES)
    common = dict(backends=args.backends, devices=args.devices, dtypes=dtypes, formulations=args.formulations,
                  l2s=args.l2, iters=args.iters, lr=args.lr or lr or SEED_LR, record_every=args.record_every,
                  optimizers=tuple(dict.fromkeys(getattr(args, "optimizers", None) or ("gd",))))
    try:
        if picked is None:  # a matrix of the user's: --datasets or --batch-sizes given, or a sweep
            cases = matrix(datasets_=args.datasets, batch_sizes=sizes, **common)
        else:
            cases = matrix(datasets_=args.datasets, **common) if "main" in picked else []
            if "minibatch" in picked:
                cases += matrix(datasets_=(data.with_options(MINIBATCH_DATASET, standardize=args.standardize),),
                                batch_sizes=(MINIBATCH_SIZE,),
                                **{**common, "dtypes": suites.MINIBATCH_DTYPES,
                                   "formulations": suites.MINIBATCH_FORMULATIONS,
                                   "iters": args.iters or suites.MINIBATCH_ITERS})
            if "softmax" in picked:
                softmax = tuple(data.with_options(ds, standardize=args.standardize) for ds in SOFTMAX_DATASETS)
                cases += matrix(datasets_=softmax, **{**common, "dtypes": suites.SOFTMAX_DTYPES})
            if "sparse" in picked:  # CSR sets and the density sweep (bench.sparse_sweep)
                cases += sparse_sweep.block_cases(matrix, {**common, "l2s": args.l2})
            if "time-to-model" in picked:  # --backends picks its loops and solvers, as with --time-to-model
                cases += time_to_model_cases(args, ttm_lr)
        if getattr(args, "time_to_model", False):
            cases = time_to_model_cases(args, ttm_lr)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return cases


def blocks(args) -> tuple[str, ...] | None:
    """The default run's blocks picked by ``--blocks`` (``all``: every one); None where the run is the
    user's own matrix (``--datasets`` or ``--batch-sizes`` given, or not ``run``)."""
    given = getattr(args, "blocks", None)
    if args.kind != "runs" or args.batch_sizes is not None or args.datasets_given:
        if given:
            raise UsageError("--blocks picks among the default run's blocks; with --datasets or --batch-sizes "
                             "the run is that matrix alone")
        return None
    if not given:
        return suites.DEFAULT_BLOCKS
    if "all" in given:
        return suites.BLOCKS
    return argtypes.choices("--blocks", given, suites.BLOCKS)


def time_to_model_cases(args, lr=default_lr):
    """The time-to-a-trained-model block (bench.time_to_model), on cpu: its default loops and solvers,
    or (``--backends`` given) the named backends' loops, scikit-learn's named as solvers."""
    backends, solvers = ttm.BACKENDS, ttm.SOLVERS
    if args.backends_given:
        backends = tuple(b for b in args.backends if not solver_only(b))
        solvers = tuple(b for b in args.backends if solver_only(b))
    return ttm.cases(("cpu",), args.seed, backends, solvers, lr=lr)
