"""python -m bench: run the comparison, compare gradients, follow trajectories, sweep sizes.

Every bad argument ends in one ``error: ...`` line and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from implementations import BACKENDS, DTYPES, FORMULATIONS

RESULTS = Path("results")
# n from 1e2 to 1e6 at d = 100, and d = 10 and 1000 at n = 1e4
SWEEP_DATASETS = ("synthetic-100x100", "synthetic-1kx100", "synthetic-10kx100", "synthetic-100kx100",
                  "synthetic-1Mx100", "synthetic-10kx10", "synthetic-10kx1000")
_DEVICE = re.compile(r"^(cpu|mps|cuda(:\d+)?)$")


class UsageError(Exception):
    """A bad command-line value: printed as one line, exit code 2."""


def _choices(name, values, allowed):
    bad = [v for v in values if v not in allowed]
    if bad:
        raise UsageError(f"{name} must be among {list(allowed)}, got {bad[0]!r}")
    return tuple(dict.fromkeys(values))


def _devices(values):
    bad = [v for v in values if not _DEVICE.match(v)]
    if bad:
        raise UsageError(f"--devices must be among cpu, cuda, cuda:N, mps, got {bad[0]!r}")
    return tuple(dict.fromkeys(values))


def _datasets(values):
    from .data import parse_name

    for v in values:
        try:
            parse_name(v)
        except ValueError as exc:
            raise UsageError(f"--datasets: {exc}") from None
    return tuple(dict.fromkeys(values))


def _positive_int(text):
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return v


def _positive_float(text):
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not v > 0 or v == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive finite number, got {text!r}")
    return v


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2 (argparse prints usage too; we keep it short)
        self.exit(2, f"{self.prog}: error: {message}\n")


def _add_matrix_args(p, datasets_default):
    from .runner import DEFAULT_DATASETS

    p.add_argument("--backends", nargs="+", default=list(BACKENDS), metavar="NAME",
                   help=f"registered backends (default: all: {', '.join(BACKENDS)})")
    p.add_argument("--devices", nargs="+", default=None, metavar="DEV",
                   help="cpu, cuda[:N], mps (default: every available one)")
    p.add_argument("--datasets", nargs="+", default=list(datasets_default or DEFAULT_DATASETS), metavar="DS",
                   help="iris or synthetic-<n>x<d>[-x<scale>], n may end in k or M (default: %(default)s)")
    p.add_argument("--dtypes", nargs="+", default=list(DTYPES), metavar="DT", help="float32 float64")
    p.add_argument("--formulations", nargs="+", default=list(FORMULATIONS), metavar="F", help="probs logits")
    p.add_argument("--iters", type=_positive_int, default=None,
                   help="steps per run (default: 5000 on iris, fewer on big data, see README)")
    p.add_argument("--threads", type=_positive_int, default=None,
                   help="threads for torch and the BLAS under NumPy alike (default: every core)")
    p.add_argument("--lr", type=_positive_float, default=0.01, help="learning rate (default: 0.01)")
    p.add_argument("--record-every", type=_positive_int, default=1,
                   help="record the loss every k steps (default: 1, as the seed does; larger k times the step alone)")
    p.add_argument("--seed", type=int, default=0, help="data and init seed (default: 0)")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: results/runs/<run-id>)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m bench", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser("run", help="the main comparison: timings, equivalence, CSV, summary, plots")
    _add_matrix_args(run, None)
    run.add_argument("--repeats", type=_positive_int, default=3, help="timed rounds per row (default: 3)")
    run.add_argument("--warmup", type=int, default=1, help="untimed warm-up rounds (default: 1)")
    run.add_argument("--target", type=_positive_float, default=1e-3,
                     help="suboptimality that defines time-to-target (default: 1e-3)")
    run.add_argument("--budget", type=_positive_float, default=1.0,
                     help="seconds per row after which repeating stops (>= 3 rounds; default: 1)")
    run.set_defaults(func=cmd_run)

    sweep = sub.add_parser("sweep", help="scaling sweep: time per step vs n (and d), with the memory floor")
    _add_matrix_args(sweep, SWEEP_DATASETS)
    sweep.set_defaults(func=cmd_sweep, dtypes=["float32"], formulations=["probs"])
    sweep.add_argument("--repeats", type=_positive_int, default=3, help="timed rounds per row (default: 3)")
    sweep.add_argument("--budget", type=_positive_float, default=1.0, help="seconds per row (default: 1)")

    grad = sub.add_parser("grad", help="compare gradients: hand-derived vs autograd vs finite differences")
    _add_matrix_args(grad, ("iris",))
    grad.add_argument("--random-points", type=_positive_int, default=2, help="random parameter points (default: 2)")
    grad.set_defaults(func=cmd_grad)

    traj = sub.add_parser("trajectory", help="run two backends in lockstep and report where they part")
    _add_matrix_args(traj, ("synthetic-1000x10-x8",))
    traj.add_argument("--a", default="numpy", help="first backend (default: numpy)")
    traj.add_argument("--b", default="torch", help="second backend (default: torch)")
    traj.set_defaults(func=cmd_trajectory)
    return parser


def _common(args):
    from .runner import default_devices

    args.backends = _choices("--backends", args.backends, BACKENDS)
    args.devices = _devices(args.devices) if args.devices else default_devices()
    args.datasets = _datasets(args.datasets)
    args.dtypes = _choices("--dtypes", args.dtypes, DTYPES)
    args.formulations = _choices("--formulations", args.formulations, FORMULATIONS)


def cmd_sweep(args) -> int:
    args.warmup, args.target, args.kind, args.optimum = 1, 1e-3, "sweeps", False
    return cmd_run(args)


def cmd_run(args) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from . import records, report
    from .runner import Comparison, RunOptions

    _common(args)
    if args.warmup < 0:
        raise UsageError(f"--warmup must be >= 0, got {args.warmup}")
    run_id = records.new_run_id()
    out = _out_folder(args, getattr(args, "kind", "runs"), run_id)
    opts = RunOptions(backends=args.backends, devices=args.devices, datasets=args.datasets, dtypes=args.dtypes,
                      formulations=args.formulations, iters=args.iters, repeats=args.repeats, warmup=args.warmup,
                      threads=args.threads, lr=args.lr, seed=args.seed, target=args.target, budget_s=args.budget,
                      record_every=args.record_every,
                      optimum=getattr(args, "optimum", True))
    console = Console(stderr=True)
    from .roofline import measure_bandwidth

    bandwidth = measure_bandwidth(args.devices)
    env = records.environment(run_id, args.threads or 0)
    env["bandwidth_gbps"] = bandwidth
    cmp = Comparison(opts, run_id, bandwidth_gbps={"host": bandwidth.get("host_read"),
                                                  "device": bandwidth.get("device_copy")})
    rows: list[dict] = []
    interrupted = False
    try:
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=console, transient=True) as progress:
            task = progress.add_task("starting", total=opts.n_cases())
            for row in cmp.rows(progress=lambda d: progress.update(task, description=d)):
                rows.append(row)
                records.write_csv(records.to_frame(rows), out / "runs.csv")  # every row on disk at once
                progress.advance(task)
    except KeyboardInterrupt:
        interrupted = True
        console.print(f"[yellow]interrupted: {len(rows)} finished row(s) kept in {out / 'runs.csv'}[/yellow]")
    env["threads"] = getattr(cmp, "threads", args.threads)
    env["notes"] = cmp.notes
    for note in cmp.notes:
        console.print(f"[yellow]note: {note}[/yellow]")
    records.write_json(env, out / "env.json")
    if not rows:
        return 130 if interrupted else 1
    df = records.to_frame(rows)  # runs.csv already holds every row
    report.write_summary(df, out / "summary.md")
    records.write_csv(report.loss_frame(cmp.loss_curves), out / "losses.csv")
    opt_loss = df.loc[df.dataset == "iris", "optimum_loss"].dropna()
    report.plot_loss_curves(cmp.loss_curves, out / "loss_curves.png",
                            optimum_loss=float(opt_loss.iloc[0]) if len(opt_loss) else None)
    report.plot_time_vs_n(df, out / "time_vs_n.png", floor_gbps=bandwidth.get("host_read"))
    report.print_summary(df, Console(width=None if sys.stdout.isatty() else 140))
    for line in report.crossovers(df):
        console.print(line)
    counts = df.status.value_counts().to_dict()
    fails = int((df.verdict == "fail").sum())
    console.print(f"wrote {out}/ (runs.csv, env.json, summary.md, losses.csv, plots): "
                  f"{len(df)} rows {counts}, {fails} outside tolerance")
    if interrupted:
        return 130
    return 1 if (df.status == "failed").any() else 0


def _out_folder(args, kind, run_id=None):
    from . import records

    try:
        return records.check_writable(args.out or RESULTS / kind / (run_id or records.new_run_id()))
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _print_table(df, title, columns):
    from rich.console import Console
    from rich.table import Table

    t = Table(title=title)
    for c in columns:
        t.add_column(c, overflow="fold")
    for _, r in df[columns].iterrows():
        t.add_row(*[f"{v:.2e}" if isinstance(v, float) else str(v) for v in r])
    Console(width=None if sys.stdout.isatty() else 160).print(t)


def cmd_grad(args) -> int:
    import pandas as pd

    from . import records
    from .data import load
    from .gradcheck import COLUMNS, compare_gradients, points

    _common(args)
    out = _out_folder(args, "grad")
    frames = []
    for name in args.datasets:
        ds = load(name, args.seed)
        pts = points(ds, args.seed, lr=args.lr, n_random=args.random_points)
        rows = compare_gradients(ds, args.backends, args.dtypes, args.formulations, args.devices[0], args.seed, pts)
        frames.append(pd.DataFrame(rows, columns=COLUMNS))
    df = pd.concat(frames, ignore_index=True)
    records.write_csv(df, out / "gradients.csv")
    _print_table(df, "gradient comparison (relative errors are normwise)",
                 ["dataset", "point", "formulation", "dtype", "method_a", "method_b", "max_rel_err", "tolerance",
                  "passed", "saturated"])
    unexplained = df[~df.passed & (df.saturated == 0)]
    print(f"wrote {out / 'gradients.csv'}: {len(df)} comparisons, {int((~df.passed).sum())} outside tolerance "
          f"({len(unexplained)} without saturation to explain them; see the note column)")
    return 1 if len(unexplained) else 0


def cmd_trajectory(args) -> int:
    import pandas as pd

    from . import records
    from .data import load
    from .trajectory import lockstep

    _common(args)
    for name in (args.a, args.b):
        if name not in BACKENDS:
            raise UsageError(f"--a/--b must be among {list(BACKENDS)}, got {name!r}")
    out = _out_folder(args, "trajectory")
    rows, curves = [], []
    for name in args.datasets:
        ds = load(name, args.seed)
        for dtype in args.dtypes:
            for form in args.formulations:
                tr = lockstep(ds, args.a, args.b, dtype, form, args.iters or 1000, args.lr, args.seed, args.devices[0])
                rows.append(tr.as_row())
                curves.append(pd.DataFrame({"dataset": name, "dtype": dtype, "formulation": form,
                                            "step": range(1, tr.n_iters + 1), "rel_deviation": tr.deviations}))
    df = pd.DataFrame(rows)
    records.write_csv(df, out / "trajectory.csv")
    records.write_csv(pd.concat(curves, ignore_index=True), out / "trajectory_steps.csv")
    _print_table(df, f"lockstep {args.a} vs {args.b}", list(df.columns))
    print(f"wrote {out / 'trajectory.csv'} and trajectory_steps.csv")
    return 0


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except UsageError as exc:
        print(f"python -m bench {args.command}: error: {exc}", file=sys.stderr)
        return 2
