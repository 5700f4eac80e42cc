"""python -m bench: run the comparison, sweep sizes, compare gradients, follow trajectories.

This module owns the one argument tree of every command (``compare`` and ``gpu`` add their
arguments to it with their modules' ``add_arguments``), turns arguments into cases and options
(``bench.cases.matrix`` over the values of ``bench.suites``, ``bench.scale.cases``) and hands them to
their owners: ``bench.runner.run`` for run, sweep and scale, ``bench.diagnostics`` for grad and
trajectory, ``bench.check``, ``bench.compare``, ``bench.gpu``. ``run --list`` (and ``sweep --list``)
prints the cases instead, one a line, without running them. Every bad argument ends in one
``error: ...`` line and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path

from implementations import BACKENDS, DTYPES, FORMULATIONS, get_backend, resolve

from . import (
    argtypes,
    check,
    compare,
    data,
    gpu,
    records,
    roofline,
    scale,
    scale_hosts,
    selection,
    shard,
    suites,
    time_to_model as ttm,
)
from .argtypes import UsageError
from .cases import (
    SEED_LR,
    RunOptions,
    default_lr,
    describe,
    fixed_lr,
    matrix,
    preflight,
)
from .diagnostics import grad, run_owned, trajectory
from .output import RUN_OWNED, Console, FolderClaim, RunFolder, folder_arg
from .report import documents
from .results import NOTHING_RAN_EXIT, NothingRan, nothing_ran
from .runner import run
from .suites import (
    DEFAULT_DATASETS,
    MINIBATCH_DATASET,
    MINIBATCH_SIZE,
    SOFTMAX_DATASETS,
)

RESULTS = Path("results")

# every dataset family a command takes (--datasets), for the help of run, sweep, scale, check
# every dataset family is listed once, in bench.data's FAMILIES_HELP, shown below the options of each
# command that takes --datasets
DATASETS_HELP = "a named set, synthetic-<n>x<d>[-k<K>][-x<scale>], or a data file (every family is listed below)"
ROW_TIMEOUT = 600.0  # seconds per row, generous: a user backend that hangs costs its row, not the run


EXIT_CODES_HELP = (
    "exit codes (every command): 0 done; 1 a row failed, a gradient is outside tolerance with nothing to explain "
    f"it, or nothing ran (every row skipped: no such device, library missing; code {NOTHING_RAN_EXIT}); 2 a bad "
    "argument or --out, refused before any work; 130 / 143 interrupted by SIGINT / SIGTERM (finished rows kept)")


def _backends_help(default: str) -> str:
    return (f"registered backends, now: {', '.join(BACKENDS)}; or a spec 'package.module:Class' or "
            f"'path/file.py:Class' (default: {default})")


def _add_matrix_args(p, datasets_default, *, iters_help=None, timing=True, dtypes_help="both"):
    p.add_argument("--backends", nargs="+", default=None, metavar="NAME",
                   help=_backends_help("every single-process one; the data-parallel ones have "
                                       "`python -m bench scale`"))
    p.add_argument("--devices", nargs="+", default=None, metavar="DEV",
                   help="cpu, cuda[:N], mps (default: every available one)")
    p.add_argument("--datasets", nargs="+", default=None, metavar="DS",
                   help=f"{DATASETS_HELP} (default: {' '.join(datasets_default)})")
    p.set_defaults(default_datasets=tuple(datasets_default))
    p.add_argument("--label", default=None, metavar="COLUMN", help=data.LABEL_HELP)
    p.add_argument("--positive", default=None, metavar="VALUE",
                   help="one-vs-rest on a data file with more than two classes: VALUE -> 1, the rest -> 0 "
                        "(without it, K > 2 label values train the softmax model)")
    p.add_argument("--standardize", action="store_true",
                   help="each feature to zero mean and unit variance (constant columns left alone), the same "
                        "arrays for the oracle and every backend")
    p.add_argument("--allow-many-classes", action="store_true",
                   help="train a label column that looks continuous, or has about one class per row, as that many "
                        "classes (refused without it: such a column is rarely a class label)")
    p.add_argument("--dense", action="store_true",
                   help="a sparse data set (LIBSVM, a sparse .npz, sparse-...) as a dense array (default: kept "
                        "sparse, CSR; refused where the dense form would not fit in memory)")
    p.add_argument("--n-features", type=argtypes.positive_int, default=None, metavar="D",
                   help="a LIBSVM file's width: D columns (default: its largest feature index; an index beyond D "
                        "is refused)")
    p.add_argument("--dtypes", nargs="+", default=None, metavar="DT",
                   help=f"float32 float64 (default: {dtypes_help})")
    p.add_argument("--formulations", nargs="+", default=list(FORMULATIONS), metavar="F",
                   help="probs logits (default: both)")
    if timing:
        p.add_argument("--optimizers", nargs="+", default=["gd"], metavar="OPT",
                       help=f"{' '.join(selection.USER_OPTIMIZERS)}: a dimension of the matrix like --dtypes; a "
                            "backend that does not implement one gives a skipped row (default: gd, the seed's fixed "
                            "step)")
    if iters_help:
        p.add_argument("--iters", type=argtypes.positive_int, default=None, help=iters_help)
    p.add_argument("--lr", type=argtypes.positive_float, default=None,
                   help="learning rate (default: the seed's 0.01 on iris, 1/L on synthetic data with L the "
                        "smoothness bound, see README)" if timing else "learning rate (default: 0.01)")
    p.add_argument("--l2", type=argtypes.nonneg_float, nargs="+", default=[0.0], metavar="L2",
                   help="L2 penalty(ies): loss + (l2/2)||w||^2, bias not penalised (default: 0)")
    p.add_argument("--seed", type=argtypes.seed, default=0, help="data and init seed (default: 0)")
    if timing:
        p.add_argument("--threads", type=argtypes.positive_int, default=None,
                       help="threads for torch, the BLAS under NumPy and numba alike (default: every available "
                            "core)")
        p.add_argument("--record-every", type=argtypes.positive_int, default=1,
                       help="record the loss every k steps (default: 1, as the seed does; larger k times the step "
                            "alone)")
        p.add_argument("--repeats", type=argtypes.positive_int, default=suites.ROUNDS_MIN,
                       help=f"the least timed rounds per row; more are added while --budget lasts "
                            f"(default: {suites.ROUNDS_MIN})")
        p.add_argument("--budget", type=argtypes.positive_float, default=suites.ROUND_BUDGET_S,
                       help=f"seconds of timed rounds per row: rounds are added until the rounds so far took this "
                            f"long (at least --repeats, at most {suites.ROUNDS_MAX}; "
                            f"default: {suites.ROUND_BUDGET_S:g})")
        p.add_argument("--row-timeout", type=argtypes.positive_float, default=ROW_TIMEOUT, metavar="SECONDS",
                       help=f"a row still running after this many seconds is a failed row and the run goes on "
                            "(SIGALRM: a backend inside one long C call stops when it returns; "
                            f"default: {ROW_TIMEOUT:g})")
        p.add_argument("--list", action="store_true",
                       help="print the cases this selection would run, one a line (case id, steps, learning rate: "
                            "'auto' where 1/L needs the data), and stop: nothing runs, no folder is made; without "
                            "--devices only cpu is listed (cuda and mps are added where torch sees them)")
    _add_overwrite(p)


def _add_overwrite(p):
    p.add_argument("--overwrite", action="store_true",
                   help="replace this command's files already in --out (default: refuse a folder that holds them)")


def _families(after: str = "") -> dict:
    """A subcommand's epilog: every dataset family (kept as laid out), then ``after``."""
    return {"epilog": data.FAMILIES_HELP + ("\n" + after if after else ""),
            "formatter_class": argparse.RawDescriptionHelpFormatter}


def build_parser() -> argparse.ArgumentParser:
    parser = argtypes.Parser(prog="python -m bench", description=__doc__.splitlines()[0], epilog=EXIT_CODES_HELP)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=argtypes.Parser)

    run = sub.add_parser("run", help="the main comparison: timings, equivalence, CSV, summary, plots",
                         **_families())
    _add_matrix_args(run, DEFAULT_DATASETS,
                     iters_help="steps per run (default: 5000 on iris, fewer on big data, see README)",
                     dtypes_help=f"{' '.join(suites.DEFAULT_DTYPES)} in the default run, "
                                 f"{' '.join(suites.REFERENCE_DTYPES)} with --blocks all (the reference run) "
                                 "and in a matrix of --datasets or --batch-sizes")
    run.set_defaults(dtypes=None)  # None: the blocks' own (bench.suites), picked in _cases
    run.add_argument("--batch-sizes", nargs="+", type=argtypes.batch_size, default=None, metavar="B",
                     help="'full' and/or mini-batch sizes (default: full, plus the mini-batch block of --blocks)")
    run.add_argument("--blocks", nargs="+", default=None, metavar="BLOCK",
                     help="the default run's blocks, when neither --datasets nor --batch-sizes is given: main (full "
                          f"batch, binary, on the default datasets, {'/'.join(suites.DEFAULT_DTYPES)}; "
                          f"{'/'.join(suites.REFERENCE_DTYPES)} with all), minibatch (the same backends at batch "
                          f"{MINIBATCH_SIZE} on {MINIBATCH_DATASET}, {'/'.join(suites.MINIBATCH_DTYPES)}, "
                          f"{'/'.join(suites.MINIBATCH_FORMULATIONS)}, {suites.MINIBATCH_ITERS} steps), softmax (full "
                          f"batch on {' and '.join(SOFTMAX_DATASETS)}, {'/'.join(suites.SOFTMAX_DTYPES)}), "
                          "time-to-model (see --time-to-model; --backends picks its loops and solvers there too), "
                          f"sparse (CSR sets {' and '.join(suites.SPARSE_DATASETS + suites.SPARSE_LARGE_DATASETS)}, "
                          "then a density sweep writing sparse_vs_dense.csv), or "
                          f"all (the reference run) (default: {' '.join(suites.DEFAULT_BLOCKS)})")
    run.add_argument("--warmup", type=int, default=1, help="untimed warm-up rounds (default: 1)")
    run.add_argument("--target", type=argtypes.positive_float, default=1e-3,
                     help="relative suboptimality (L - L*)/|L*| that defines time_to_target_s (default: 1e-3)")
    run.add_argument("--time-to-model", action="store_true",
                     help="run only the time-to-a-trained-model block (--blocks time-to-model): gd, adam and lbfgs "
                          f"of each backend (default: {' '.join(ttm.BACKENDS)}) and scikit-learn's solvers "
                          f"({', '.join(ttm.SOLVERS)}) to 1e-4 and 1e-6 relative suboptimality on "
                          f"{ttm.DATASET}, {ttm.DTYPE}, {ttm.FORMULATION}, l2={ttm.L2:g} (see bench/time_to_model.py); "
                          "--backends picks which")
    run.add_argument("--out", type=folder_arg, default=None,
                     help="output folder (default: results/runs/<run-id>, always new)")
    run.set_defaults(func=cmd_run, kind="runs", optimum=True)

    sweep = sub.add_parser("sweep", help="scaling sweep: time per step vs n (and d), with the memory floor",
                         **_families())
    _add_matrix_args(sweep, suites.SWEEP_DATASETS, iters_help="steps per run (default: by size, as for run)")
    sweep.add_argument("--out", type=folder_arg, default=None,
                       help="output folder (default: results/sweeps/<run-id>, always new)")
    sweep.set_defaults(func=cmd_run, kind="sweeps", dtypes=list(suites.SWEEP_DTYPES),
                       formulations=list(suites.SWEEP_FORMULATIONS), warmup=1,
                       target=1e-3, optimum=False, batch_sizes=None)

    grad = sub.add_parser("grad", help="compare gradients: hand-derived vs autograd vs finite differences",
                         **_families())
    _add_matrix_args(grad, ("iris",), timing=False)
    grad.add_argument("--random-points", type=argtypes.positive_int, default=2,
                      help="random parameter points (default: 2)")
    grad.add_argument("--out", type=folder_arg, default=None, help="output folder (default: results/grad/<run-id>)")
    grad.set_defaults(func=cmd_grad)

    traj = sub.add_parser("trajectory", help="run two backends in lockstep and report where they part",
                         **_families())
    _add_matrix_args(traj, ("synthetic-1000x10-x8",), iters_help="steps (default: 1000)", timing=False)
    traj.add_argument("--a", default="numpy", help="first backend (default: numpy)")
    traj.add_argument("--b", default="torch", help="second backend (default: torch)")
    traj.add_argument("--out", type=folder_arg, default=None,
                      help="output folder (default: results/trajectory/<run-id>)")
    traj.set_defaults(func=cmd_trajectory)

    sc = sub.add_parser("scale", help="strong scaling of the data-parallel backends over world sizes",
                        description=scale_hosts.HELP, **_families(EXIT_CODES_HELP))
    sc.add_argument("--backends", "--libraries", dest="backends", nargs="+", default=None, metavar="NAME",
                    help=_backends_help("every data-parallel one") + "; a single-process backend named here "
                         "runs once, as the baseline of the data-parallel ones of its library")
    sc.add_argument("--workers", nargs="+", type=argtypes.positive_int, default=list(suites.SCALE_WORKERS),
                    help=f"world sizes (default: {' '.join(map(str, suites.SCALE_WORKERS))})")
    sc.add_argument("--datasets", nargs="+", default=list(suites.SCALE_DATASETS), metavar="DS",
                    help=f"{DATASETS_HELP} (default: {' '.join(suites.SCALE_DATASETS)}, ~400 MB in float32)")
    sc.add_argument("--dtype", default=suites.SCALE_DTYPE, choices=list(DTYPES))
    sc.add_argument("--iters", type=argtypes.positive_int, default=suites.SCALE_ITERS,
                    help=f"steps per timed run (default {suites.SCALE_ITERS})")
    sc.add_argument("--rounds", type=argtypes.positive_int, default=suites.SCALE_ROUNDS,
                    help=f"timed runs per case (default {suites.SCALE_ROUNDS})")
    sc.add_argument("--threads", type=argtypes.positive_int, default=suites.SCALE_THREADS,
                    help=f"threads per worker (default {suites.SCALE_THREADS})")
    sc.add_argument("--lr", type=argtypes.positive_float, default=SEED_LR, help="learning rate (default: 0.01)")
    sc.add_argument("--out", type=folder_arg, default=None,
                    help="output folder (default: results/scale/<run-id>, always new)")
    scale_hosts.add_arguments(sc)
    _add_overwrite(sc)
    sc.set_defaults(func=cmd_scale)

    rp = sub.add_parser("report", help="redraw a saved run's summary and plots; write docs/results.md, docs/schema.md")
    documents.add_arguments(rp)
    rp.set_defaults(func=lambda args, argv=(): documents.cmd_report(args))

    cmp = sub.add_parser("compare", help="compare two saved runs (or pytest-benchmark JSON files): ratios, p-values")
    compare.add_arguments(cmp)
    cmp.set_defaults(func=lambda args, argv=(): compare.cmd_compare(args))

    # backends from users (docs/loop.md): list them all, check one
    bk = sub.add_parser("backends", help="every backend: its declared attributes, what it supports, where it came from")
    bk.add_argument("specs", nargs="*", metavar="SPEC",
                    help="also list these specs ('package.module:Class', 'path/file.py:Class')")
    bk.set_defaults(func=cmd_backends)
    ck = sub.add_parser("check",
                        help="is my loop right, and how fast: conformance, oracle, first divergent step, timing",
                        **_families("exit codes: 0 right; 1 wrong (a check failed, or one of its rows failed, "
                                    "diverged or disagrees with the oracle); 2 the spec cannot be loaded, or a bad "
                                    "argument; 130 / 143 interrupted"))
    _add_check_args(ck)
    ck.set_defaults(func=cmd_check)

    sh = sub.add_parser("shard", help="write a data set as a folder of shards, for the data-parallel engines across "
                                      "hosts (docs/distributed.md)")
    shard.add_arguments(sh)
    sh.set_defaults(func=lambda args, argv=(): shard.cmd_shard(args))

    # the GPU half (docs/gpu.md): floors, default comparison, crossover, one archive
    gp = sub.add_parser("gpu", help="the GPU half in <= 8 minutes: floors, default comparison, crossover sweep")
    gpu.add_arguments(gp)
    gp.set_defaults(func=lambda args, argv=(): gpu.cmd_gpu(args))
    return parser


def _add_check_args(p):
    p.add_argument("spec", metavar="SPEC",
                   help="the backend: a registered name, 'package.module:Class' or 'path/file.py:Class'")
    p.add_argument("--datasets", nargs="+", default=list(suites.CHECK_DATASETS), metavar="DS",
                   help=f"datasets of the timing rows: {DATASETS_HELP} (default: {' '.join(suites.CHECK_DATASETS)})")
    p.add_argument("--iters", type=argtypes.positive_int, default=None,
                   help="steps per timing row (default: as for run, 5000 on iris, 50 on synthetic-10kx100)")
    p.add_argument("--dtype", choices=list(DTYPES), default="float32",
                   help="dtype of the timing rows (default: float32)")
    p.add_argument("--formulation", choices=list(FORMULATIONS), default="probs",
                   help="formulation of the timing rows (default: probs, the seed's)")
    p.add_argument("--batch-size", type=argtypes.batch_size, default=None, metavar="B",
                   help="'full' (default) or a mini-batch size for the timing rows")
    p.add_argument("--device", default="cpu", help="device of the timing rows (default: cpu)")
    p.add_argument("--repeats", type=argtypes.positive_int, default=suites.ROUNDS_MIN,
                   help=f"the least timed rounds per row; more are added while --budget lasts "
                        f"(default: {suites.ROUNDS_MIN})")
    p.add_argument("--budget", type=argtypes.positive_float, default=suites.ROUND_BUDGET_S,
                   help=f"seconds of timed rounds per row: rounds are added until the rounds so far took this long "
                        f"(at most {suites.ROUNDS_MAX}; default: {suites.ROUND_BUDGET_S:g})")
    p.add_argument("--threads", type=argtypes.positive_int, default=None,
                   help="threads for every library (default: all cores)")
    p.add_argument("--row-timeout", type=argtypes.positive_float, default=ROW_TIMEOUT, metavar="SECONDS",
                   help=f"a row or a check still running after this many seconds fails, and the command goes on "
                        f"(default: {ROW_TIMEOUT:g})")
    p.add_argument("--out", type=folder_arg, default=None, help="output folder (default: results/check/<run-id>)")
    _add_overwrite(p)


def _claim(args, kind, run_id, owned=None, report=True):
    """The output folder, claimed by ``run``'s rules before any work (locked; refused when it holds
    this command's files, unless --overwrite): a ``RunFolder`` whose claim covers ``owned`` (default:
    a run's files). Any reason it cannot be used is a UsageError."""
    try:
        folder = RunFolder(args.out or RESULTS / kind / run_id, overwrite=args.overwrite, report=report)
        if owned is not None:
            folder.claim = FolderClaim(folder.folder, owned, args.overwrite)
        return folder.open()
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _preflight(cases):
    try:
        preflight(cases)  # sizes only: before any dataset is built
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _ended(command, result) -> int:
    if result.status == "complete" and nothing_ran(result.rows):
        print(f"python -m bench {command}: {result.reason}", file=sys.stderr)
    return result.exit_code


def cmd_run(args, argv=()) -> int:
    devices_given = args.devices is not None
    selection.common(args, listing=args.list)
    if args.warmup < 0:
        raise UsageError(f"--warmup must be >= 0, got {args.warmup}")
    if args.list:
        return _list(args, devices_given)
    _preflight(selection.cases(args))
    cases = selection.cases(args, lr=functools.partial(default_lr, seed=args.seed))
    run_id = records.new_run_id()
    folder = _claim(args, args.kind, run_id)
    folder.extra_env["datasets"] = _data_files(args.datasets, args.seed)
    opts = RunOptions(repeats=args.repeats, warmup=args.warmup, budget_s=args.budget, threads=args.threads,
                      seed=args.seed, target=args.target, optimum=args.optimum, row_timeout=args.row_timeout)
    result = run(cases, [NothingRan(), folder, Console(folder)], opts, run_id=run_id,
                 figures=lambda threads: roofline.measure_roofline(args.devices, threads))
    return _ended(args.command, result)


def _list(args, devices_given: bool) -> int:
    """``--list``: the selection's cases, one a line, in the order they would run; nothing runs and
    no folder is made. A learning rate that would be 1/L of data not yet built is shown as ``auto``."""
    auto = set()

    def lr(dataset, l2, seed=None):  # a stand-in for default_lr that needs no data
        if not fixed_lr(dataset):
            auto.add((dataset, l2))
        return SEED_LR

    cases = selection.cases(args, lr=lr, ttm_lr=lr)
    _preflight(cases)
    for case in cases:
        shown = "auto" if case.config.optimizer == "gd" and (case.dataset, case.config.l2) in auto else None
        print(describe(case, shown))
    note = "" if devices_given else "; cpu only listed (cuda and mps are added where torch sees them)"
    print(f"python -m bench {args.command}: {len(cases)} case(s){note}", file=sys.stderr)
    return 0


def _data_files(names, seed) -> dict:
    """env.json's record of the run's data files: origin, shape, content hash, label mapping."""
    return {n: data.describe(data.load(n, seed)) for n in names if data.is_file(n)}


def cmd_scale(args, argv=()) -> int:
    backends = argtypes.backends(args.backends, scale.data_parallel_backends)
    across = scale_hosts.check_arguments(args)  # across hosts (bench.scale_hosts), or None: on this machine
    datasets = argtypes.datasets(args.datasets, load=across is None)  # across hosts the driver never loads the rows
    try:
        cases = (scale.cases(backends, args.workers, datasets, args.dtype, args.iters, args.lr) if across is None
                 else scale_hosts.plan(backends, args.workers, datasets, args.scaling, args.dtype, args.iters, args.lr))
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if across is None:
        _preflight(cases)
    run_id = records.new_run_id()
    folder = _claim(args, "scale", run_id, owned=(*RUN_OWNED, *scale.OWNED), report=False)
    opts = RunOptions(repeats=args.rounds, warmup=1, budget_s=None, threads=args.threads, optimum=False)
    sinks = [NothingRan(), scale.ScaleView(folder), folder, Console(folder, table=False)]
    result = (run(cases, sinks, opts, run_id=run_id) if across is None
              else scale_hosts.run(cases, sinks, opts, run_id, **across))
    return _ended(args.command, result)


def cmd_backends(args, argv=()) -> int:
    check.print_backends(list(dict.fromkeys([*BACKENDS, *(argtypes.resolve_spec("SPEC", s) for s in args.specs)])))
    return 0


def cmd_check(args, argv=()) -> int:
    try:
        name = resolve(args.spec)
        cls = get_backend(name)
    except Exception as exc:  # not a spec, a missing file or class, an import that fails: cannot load, exit 2
        raise UsageError(f"cannot load {args.spec!r}: {exc}") from None
    datasets, devices = argtypes.datasets(args.datasets), argtypes.devices([args.device])
    try:
        cases = matrix(tuple(dict.fromkeys([name, *check.ALONGSIDE])), devices, datasets, [args.dtype],
                       [args.formulation], (args.batch_size,), iters=args.iters,
                       lr=functools.partial(default_lr, seed=0))
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    _preflight(cases)
    run_id = records.new_run_id()
    folder = _claim(args, "check", run_id, owned=(*RUN_OWNED, *check.OWNED))
    opts = RunOptions(repeats=args.repeats, warmup=1, budget_s=args.budget, threads=args.threads, seed=0,
                      row_timeout=args.row_timeout)
    return check.run(args.spec, name, cls, cases, folder, opts, run_id)


def cmd_grad(args, argv=()) -> int:
    selection.common(args)
    run_id = records.new_run_id()
    folder = _claim(args, "grad", run_id, owned=grad.OWNED, report=False)
    return run_owned(args.command, folder, run_id, lambda result: grad.run(
        args.datasets, args.backends, args.devices, args.dtypes, args.formulations, args.l2, args.seed,
        args.lr or SEED_LR, args.random_points, folder.folder))


def cmd_trajectory(args, argv=()) -> int:
    selection.common(args)
    args.a, args.b = argtypes.resolve_spec("--a", args.a), argtypes.resolve_spec("--b", args.b)
    if args.a == args.b:
        raise UsageError(f"--a and --b must name two different backends, got {args.a!r} twice")
    run_id = records.new_run_id()
    folder = _claim(args, "trajectory", run_id, owned=trajectory.OWNED, report=False)
    return run_owned(args.command, folder, run_id, lambda result: trajectory.run(
        args.datasets, args.a, args.b, args.devices, args.dtypes, args.formulations, args.l2, args.iters or 1000,
        args.lr or SEED_LR, args.seed, folder.folder))


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args, argv)
    except UsageError as exc:
        print(f"python -m bench {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # outside a run's own handling (grad, trajectory, set-up)
        print(f"python -m bench {args.command}: interrupted", file=sys.stderr)
        return 130
