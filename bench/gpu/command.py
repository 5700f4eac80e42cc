"""``python -m bench gpu``: the arguments and the command (stages in order, the hard deadline, packing).

What it runs, each stage with a time budget (:mod:`bench.gpu.plan`, scaled by ``--budget``): env,
floors (``bench.roofline.measure_roofline``, the device's on CUDA), default, ddp, sweep
(:mod:`bench.gpu.stages`), then the files (:mod:`bench.gpu.pack`). ``--smoke`` (also ``--tiny``,
``--dry-run``) runs the same stages and backends on tiny sizes, every chunk, in about a minute.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

from .. import records
from ..cases import RunOptions
from ..env import environment
from ..output import FolderError, claim_folder, folder_arg
from ..roofline import measure_roofline
from .deadline import Clock, Deadline, SigintGate, Watchdog
from .pack import pack
from .plan import FULL, HARD_MARGIN_S, MIN_HARD_S, OWNED, STAGES, deadlines, plan_for
from .stages import (
    Runner,
    Stage,
    expected_backends,
    stage_ddp,
    stage_default,
    stage_sweep,
)

STAGE_FUNCTIONS = {"default": stage_default, "ddp": stage_ddp, "sweep": stage_sweep}


def parse_devices(text: str | None) -> tuple[str, ...]:
    """``cpu,cuda`` (comma- or space-separated); default: ``cpu`` plus ``cuda`` where torch sees it."""
    if text is None:
        try:
            import torch

            return ("cpu", "cuda") if torch.cuda.is_available() else ("cpu",)
        except Exception:
            return ("cpu",)
    values = [v for v in re.split(r"[,\s]+", text.strip()) if v]
    bad = [v for v in values if not re.match(r"^(cpu|cuda(:\d+)?)$", v)]
    if not values or bad:
        raise argparse.ArgumentTypeError(f"expected devices among cpu, cuda, cuda:N (comma-separated), got {text!r}")
    return tuple(dict.fromkeys(values))


def _positive(text):
    try:
        v = float(text)
    except ValueError:
        v = math.nan
    if not (0 < v < math.inf):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return v


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=folder_arg, required=True,
                   help="folder for the (at most 8) files; created if missing (e.g. results/gpu)")
    p.add_argument("--devices", type=parse_devices, default=None, metavar="DEV[,DEV]",
                   help="cpu,cuda (default: cpu, plus cuda where torch sees one)")
    p.add_argument("--smoke", "--tiny", "--dry-run", dest="smoke", action="store_true",
                   help="every stage and backend of the full run on tiny sizes, about a minute (run it first on a "
                        "GPU; `make test` runs it on the CPU); exit code 1 if any stage or backend was not reached")
    p.add_argument("--budget", type=_positive, default=None,
                   help=f"seconds for all stages, scaled from the plan (default {sum(FULL['plan'].values())}); the "
                        f"hard deadline is the scaled plan + {HARD_MARGIN_S} s, at least {MIN_HARD_S} s (default "
                        f"{FULL['hard_limit']} s), then packing")
    p.add_argument("--threads", type=int, default=None, help="host threads for every library (default: every core)")
    p.add_argument("--overwrite", action="store_true", help="replace this command's files already in --out")


def _floors(figures: dict, stage: Stage, devices, threads, smoke: bool) -> None:
    t0 = time.monotonic()
    try:
        figures.update(measure_roofline(devices, threads, host_bytes=plan_for(smoke)["host_bytes"]))
    except Exception as exc:
        stage.error = f"{type(exc).__name__}: {exc}"
    stage.seconds, stage.chunks_run = time.monotonic() - t0, 1


def _stages(runner: Runner, stages: list, ends: dict, devices, threads, smoke: bool) -> None:
    st = Stage("floors", ends["floors"])
    stages.append(st)
    _floors(runner.figures, st, devices, threads, smoke)
    for name in STAGES[1:]:
        st = Stage(name, ends[name])
        stages.append(st)
        try:
            STAGE_FUNCTIONS[name](runner, st, devices, smoke)
        except (Deadline, KeyboardInterrupt):
            raise
        except Exception as exc:  # a stage's own failure (not a row's): the others still run
            st.error = f"{type(exc).__name__}: {exc}"
            runner.failed = True


def cmd_gpu(args) -> int:
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # JAX must not take 75 % of the GPU from torch
    clock = Clock()
    smoke = bool(getattr(args, "smoke", False) or getattr(args, "tiny", False))
    devices = args.devices or parse_devices(None)
    ends, hard = deadlines(smoke, args.budget)
    try:
        claim = claim_folder(args.out, OWNED, overwrite=args.overwrite, what="a GPU run")
    except (FolderError, ValueError) as exc:
        print(f"python -m bench gpu: error: {exc}", file=sys.stderr)
        return 2
    run_id = records.new_run_id()
    work = Path(tempfile.mkdtemp(prefix="bench-gpu-"))
    env, figures, stages, interrupted = {}, {}, [], False
    # at least 3 timed rounds a row, more while they took under 0.5 s (bench.timing.measure)
    opts = RunOptions(repeats=3, warmup=1, budget_s=0.5, threads=args.threads, seed=0,
                      optimum=plan_for(smoke)["optimum"])
    runner = Runner(work, figures, opts, clock)
    try:
        with SigintGate() as gate:
            watchdog = Watchdog(clock, hard)
            try:
                try:
                    gate.open = True
                    watchdog.start()
                    try:
                        env = environment(run_id, devices)
                    except Exception as exc:  # never the end of the run: recorded, and the files still written
                        env = {"run_id": run_id, "environment_error": f"{type(exc).__name__}: {exc}"}
                    _stages(runner, stages, ends, devices, args.threads, smoke)
                except Deadline:
                    clock.hit = True
                except KeyboardInterrupt:  # the watchdog's (clock.hit) or the user's Ctrl-C
                    interrupted = not clock.hit
                finally:
                    gate.open = False
            except KeyboardInterrupt:  # one that landed in the finally, before the gate closed
                interrupted = interrupted or not clock.hit
            watchdog.stop()
            _close_stages(stages, ends, clock.hit)
            code = pack(args.out, work, run_id, env, figures, stages, runner, clock, devices, smoke,
                        interrupted, {s: expected_backends(s) for s in STAGES[1:]})
            if gate.held and not clock.hit and code != 130:  # a user's Ctrl-C while packing: packed, then 130
                code = 130
            return code
    finally:
        shutil.rmtree(work, ignore_errors=True)
        claim.close()


def _close_stages(stages: list, ends: dict, hit: bool) -> None:
    """Say what the deadline (or an interruption) left out: the rest of the running stage, the
    stages never begun."""
    if hit and stages and not stages[-1].not_run:
        stages[-1].not_run.append(("the rest of the stage", "the hard deadline ended it"))
    ran = {st.name for st in stages}
    for name in STAGES:
        if name not in ran:
            stages.append(Stage(name, ends[name], not_run=[("the whole stage", "the hard deadline came first"
                                                              if hit else "interrupted")]))

