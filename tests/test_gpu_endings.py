"""The GPU command's endings, tested on the CPU: the hard deadline against blocked calls (a wait,
a silent torch-ddp rank), the SIGINT gate, the files written whatever ends the stages, and the
skip decisions for libraries that fail on a CUDA device (Triton, a C compiler, CuPy)."""

from __future__ import annotations

import json
import signal
import socket
import threading
import time
import types
from multiprocessing.connection import Connection, wait as mp_wait

import pandas as pd
import pytest

from bench import cli, env as environment
from bench.gpu import command, deadline, plan, stages
from bench.memory import PeakMemory

# -- the hard deadline against blocked calls ---------------------------------------------------------

def test_hard_deadline_interrupts_a_blocked_wait_within_a_second():
    a, b = socket.socketpair()
    conn = Connection(a.detach())
    clock = deadline.Clock()
    watchdog = deadline.Watchdog(clock, 0.5).start()
    t0 = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            mp_wait([conn], timeout=10)  # nothing ever comes: only the signal ends it
            time.sleep(10)
    finally:
        watchdog.stop()
        conn.close()
        b.close()
    assert clock.hit and time.monotonic() - t0 < 1.5


def _silent_group(timeout=30.0):
    """A LocalGroup of one 'rank' that never answers (no process is started)."""
    from implementations.torch_ddp import LocalGroup

    a, b = socket.socketpair()
    g = LocalGroup.__new__(LocalGroup)
    g.workers, g.device, g.timeout = 1, "cpu", timeout
    g.closed = g.broken = g.busy = False
    g.procs, g.conns = [types.SimpleNamespace(poll=lambda: None, pid=0, returncode=None)], [Connection(a.detach())]
    return g, b


def test_ddp_call_has_a_deadline():
    from implementations.torch_ddp import RankError

    g, peer = _silent_group()
    t0 = time.monotonic()
    try:
        with pytest.raises(RankError, match="did not answer run within 0.3 s"):
            g.call("run", [()], timeout=0.3)
    finally:
        peer.close()
    assert time.monotonic() - t0 < 1.3 and g.broken and not g.healthy()


def test_hard_deadline_stops_a_stalled_rank_wait():
    g, peer = _silent_group()
    clock = deadline.Clock()
    watchdog = deadline.Watchdog(clock, 0.5).start()
    t0 = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            g.call("run", [()])  # the default deadline is an hour: the watchdog must end it
    finally:
        watchdog.stop()
        peer.close()
    assert time.monotonic() - t0 < 1.5 and g.broken  # a group left inside a command is never reused


@pytest.mark.slow  # waits for the watchdog's deadline
def test_hard_deadline_ends_the_run_and_keeps_finished_rows(tmp_path):
    from bench.cases import RunOptions, matrix

    clock = deadline.Clock()
    runner = stages.Runner(tmp_path, {}, RunOptions(repeats=3, warmup=0, budget_s=None, optimum=False), clock)
    stage = stages.Stage("sweep", end=100.0)
    quick = matrix(("numpy",), ("cpu",), ("synthetic-100x4",), ("float64",), ("probs",), iters=10)
    endless = matrix(("numpy",), ("cpu",), ("synthetic-1kx100",), ("float64",), ("probs",), iters=10_000_000)
    watchdog = deadline.Watchdog(clock, 4.0).start()
    try:
        with pytest.raises(deadline.Deadline):
            runner.run(stage, "deadline", quick + endless)
    finally:
        watchdog.stop()
    assert clock.hit and not runner.failed  # a deadline is planned, not a failure
    assert [r.status for _, r in runner.rows] == ["ok"]  # the quick row is kept, the endless one never finished
    assert len(pd.read_csv(tmp_path / "sweep" / "runs.csv")) == 1


def test_watchdog_stopped_never_fires():
    clock = deadline.Clock()
    w = deadline.Watchdog(clock, 0.05).start()
    w.stop()
    time.sleep(0.2)
    assert not clock.hit


def test_closed_gate_counts_sigint_instead_of_raising():
    with deadline.SigintGate() as gate:
        gate.open = False
        signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
        time.sleep(0.05)
        assert gate.held == 1
        gate.open = True
        with pytest.raises(KeyboardInterrupt):
            signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
            time.sleep(1)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


# -- the endings: the files are written whatever happens ------------------------------------------------

@pytest.fixture
def quick_command(monkeypatch):
    """cmd_gpu with stages that do nothing but say they ran (no pipeline, no floor)."""
    def ran(runner, stage, devices, smoke):
        stage.chunks_run = 1

    monkeypatch.setattr(command, "STAGE_FUNCTIONS", {n: ran for n in plan.STAGES[1:]})
    monkeypatch.setattr(command, "measure_roofline", lambda *a, **k: {"host_read": 1.0})
    return lambda out: cli.main(["gpu", "--out", str(out), "--devices", "cpu"])


def test_a_failing_environment_still_packs(quick_command, monkeypatch, tmp_path):
    def broken(run_id, devices=None):
        raise RuntimeError("CUDA error: device properties unreadable")

    monkeypatch.setattr(command, "environment", broken)
    assert quick_command(tmp_path) == 0
    env = json.loads((tmp_path / "env.json").read_text())
    assert "device properties unreadable" in env["environment_error"]
    assert "could not be read in full" in (tmp_path / "summary.md").read_text()


@pytest.mark.parametrize("watchdog", [True, False])
def test_an_interrupt_at_the_watchdog_stop_still_packs(quick_command, monkeypatch, tmp_path, watchdog):
    """The watchdog's signal (or a user's Ctrl-C) arriving just as the watchdog is stopped: packed;
    the watchdog's is a planned end, the user's gives 130 after the files."""
    stop = deadline.Watchdog.stop

    def late_stop(self):
        self.clock.hit = self.clock.hit or watchdog
        signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
        time.sleep(0.05)
        stop(self)

    monkeypatch.setattr(deadline.Watchdog, "stop", late_stop)
    code = quick_command(tmp_path)
    assert code == (0 if watchdog else 130)
    # no row, no plot
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(set(plan.OWNED) - {"crossover.png", "runs.csv"})


def test_a_stage_that_did_not_run_is_a_failure(quick_command, monkeypatch, tmp_path):
    monkeypatch.setitem(command.STAGE_FUNCTIONS, "ddp", lambda runner, stage, devices, smoke: None)
    assert quick_command(tmp_path) == 1
    assert json.loads((tmp_path / "env.json").read_text())["stages_not_run"] == ["ddp"]


def test_ddp_rows_say_what_the_parent_cannot_see():
    from bench.records import Row

    row = Row(run_id="r", case_id="c", backend="torch-ddp", device="cuda", dtype="float32", formulation="probs",
              dataset="iris", loop="full", engine="gloo", peak_mem_mb=0.01)
    fixed = stages._fix_row(row)
    assert fixed.engine == "nccl" and fixed.peak_mem_mb is None
    assert stages._fix_row(row.replace(device="cpu")).engine == "gloo"
    assert stages._fix_row(row.replace(backend="torch")) == row.replace(backend="torch")


# -- skip decisions for libraries that fail on the device ----------------------------------------------

def test_torch_compiled_on_cuda_needs_triton_and_a_c_compiler(monkeypatch):
    import shutil
    import sys

    from implementations import torch_compiled

    monkeypatch.setitem(sys.modules, "triton", None)  # import fails
    assert "needs Triton" in torch_compiled.cuda_toolchain_problem()
    monkeypatch.setitem(sys.modules, "triton", types.ModuleType("triton"))
    monkeypatch.delenv("CC", raising=False)
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert "C compiler" in torch_compiled.cuda_toolchain_problem()
    monkeypatch.setattr(shutil, "which", lambda name: "/usr/bin/gcc" if name == "gcc" else None)
    assert torch_compiled.cuda_toolchain_problem() == ""
    monkeypatch.setattr(shutil, "which", lambda name: "/opt/cc" if name == "mycc" else None)
    monkeypatch.setenv("CC", "mycc -O2")
    assert torch_compiled.cuda_toolchain_problem() == ""


def test_cupy_that_fails_at_its_first_kernel_is_unavailable(monkeypatch):
    import contextlib
    import sys

    from implementations import numpy_backend
    from implementations.base import DeviceUnavailableError

    def arange(*a, **k):
        raise RuntimeError("CUDA_ERROR_UNSUPPORTED_PTX_VERSION: the provided PTX was compiled with an "
                           "unsupported toolchain")

    fake = types.SimpleNamespace(float64="float64", arange=arange, cuda=types.SimpleNamespace(
        runtime=types.SimpleNamespace(getDeviceCount=lambda: 1), Device=lambda i: contextlib.nullcontext()))
    monkeypatch.setitem(sys.modules, "cupy", fake)
    monkeypatch.setattr(numpy_backend, "_PROBED", {})
    with pytest.raises(DeviceUnavailableError, match="CuPy cannot run on it .*UNSUPPORTED_PTX"):
        numpy_backend._cuda_namespace("cuda")


def test_peak_memory_on_an_unusable_cuda_device_is_empty():
    with PeakMemory("cuda") as pm:
        pass
    assert pm.mb is None


def test_jax_programs_use_the_highest_matmul_precision():
    jax = pytest.importorskip("jax")
    from implementations import TrainConfig
    from implementations.jax_backend import MATMUL_PRECISION, JaxTrainer

    t = JaxTrainer(TrainConfig(n_iters=2))
    with t._x64():
        assert jax.config.jax_default_matmul_precision == MATMUL_PRECISION == "highest"
    assert environment.environment("r", ("cpu",))["gpu_details"]["jax_matmul_precision"] == "highest"
