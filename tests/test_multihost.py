"""Across simulated hosts (network namespaces, :mod:`tests.netns`): torchrun with c10d rendezvous, one
node per namespace, and a Dask scheduler with two workers in three namespaces, each worker reading only
its own parts of a shard folder. Rows agree with the streaming float64 oracle (<= 1e-12 relative) on
full batch and mini-batch, unequal shards, binary and K = 3; a link taken down and a host's processes
killed end the survivors within the timeout with one message naming the lost host, and nothing is left
running. Skipped with the reason where namespaces cannot be made (not root)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pandas as pd
import pytest

from bench import netns, scale
from bench.data import load
from bench.data.shards import write_shards

from .cli import run_cli
from .netns import hosts_fixture

pytestmark = pytest.mark.multihost
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)
TIMEOUT_S = 5  # LOGREG_DIST_TIMEOUT in every process
TOL = 1e-12
TORCH_PORT, DASK_PORT = 29500, 8786

# one program for both engines: the cases of argv[1] (JSON) in one group / one client, rows to argv[2];
# a case with "ready" writes that file once prepared and then runs until stopped (the fault tests)
DRIVER = """
import json, os, sys
from implementations import TrainConfig, get_backend
from bench.hosts import measure_on_shards
from implementations.schedule import init_params
cases, out, engine, scheduler = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4] or None
kw = {"scheduler": scheduler} if engine == "numpy-dask" else {}
rows = []
try:
    for c in cases:
        cfg = TrainConfig(**c["config"])
        if "ready" not in c:
            rows.append(measure_on_shards(engine, c["shards"], cfg, scheduler))
            continue
        with get_backend(engine)(cfg, **kw) as tr:
            from implementations.shards import read_meta
            meta = read_meta(c["shards"])
            tr.prepare_shards(meta, *init_params(meta.d, 0, 0.5, cfg.n_classes))
            open(c["ready"], "w").close()
            tr.run()
except Exception as exc:
    print(f"driver: {exc}", file=sys.stderr, flush=True)
    sys.exit(1)
if int(os.environ.get("RANK", "0")) == 0:
    with open(out, "w") as f:
        json.dump(rows, f)
"""


@pytest.fixture(scope="module")
def shard_sets(tmp_path_factory):
    """Unequal parts: binary 101 x 5 in parts of 30, 41, 20, 10; K = 3, 90 x 4 in 20, 45, 25."""
    root = tmp_path_factory.mktemp("shards")
    binary, k3 = load("synthetic-101x5"), load("synthetic-90x4-k3")
    write_shards(binary.X, binary.y, str(root / "bin"), sizes=[30, 41, 20, 10])
    write_shards(k3.X, k3.y, str(root / "k3"), sizes=[20, 45, 25], n_classes=3)
    driver = root / "driver.py"
    driver.write_text(DRIVER)
    return {"bin": str(root / "bin"), "k3": str(root / "k3"), "driver": str(driver)}


def _env(hosts, i: int) -> dict:
    return dict(os.environ, PYTHONPATH=ROOT, GLOO_SOCKET_IFNAME=hosts.ifnames[i], LOGREG_DIST_TIMEOUT=str(TIMEOUT_S),
                OMP_NUM_THREADS="1", PATH=BIN + os.pathsep + os.environ.get("PATH", ""))


def _cases(sets, steps=3):
    def case(key, k, bs):
        return {"shards": sets[key], "config": {"lr": 0.5, "n_iters": steps, "dtype": "float64",
                                                "formulation": "logits", "batch_size": bs, "workers": 2,
                                                "n_classes": k}}
    return [case("bin", 2, None), case("bin", 2, 16), case("k3", 3, None), case("k3", 3, 16)]


def _torchrun(hosts, sets, cases, out, node: int):
    argv = [os.path.join(BIN, "torchrun"), "--nnodes", "2", "--nproc-per-node", "1",
            "--rdzv-backend", "c10d", "--rdzv-endpoint", f"{hosts.addrs[0]}:{TORCH_PORT}", "--rdzv-id", "logreg",
            "--local-addr", hosts.addrs[node], "--max-restarts", "0",
            "--rdzv-conf", f"join_timeout={TIMEOUT_S * 4},read_timeout={TIMEOUT_S},is_host={int(node == 0)}",
            sets["driver"], json.dumps(cases), out, "torch-ddp", ""]
    return subprocess.Popen(hosts.cmd(node, argv), env=_env(hosts, node), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def _dask_cluster(hosts):
    sched = f"tcp://{hosts.addrs[0]}:{DASK_PORT}"
    procs = [subprocess.Popen(hosts.cmd(0, [os.path.join(BIN, "dask"), "scheduler", "--host", hosts.addrs[0], "--port",
                                            str(DASK_PORT), "--no-dashboard"]),
                              env=_env(hosts, 0), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    for i in (1, 2):
        procs.append(subprocess.Popen(
            hosts.cmd(i, [os.path.join(BIN, "dask"), "worker", sched, "--host", hosts.addrs[i], "--nthreads", "1",
                          "--no-nanny", "--no-dashboard", "--death-timeout", str(TIMEOUT_S * 4)]),
            env=_env(hosts, i), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    return sched, procs


def _client(hosts, sets, cases, out, sched, workers=2):
    script = ("import sys; from distributed import Client; c = Client(sys.argv[1], timeout=30); "
              "c.wait_for_workers(int(sys.argv[2]), timeout=30); c.close()")
    subprocess.run(hosts.cmd(0, [sys.executable, "-c", script, sched, str(workers)]), env=_env(hosts, 0),
                   check=True, timeout=40)
    return subprocess.Popen(hosts.cmd(0, [sys.executable, sets["driver"], json.dumps(cases), out, "numpy-dask", sched]),
                            env=_env(hosts, 0), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _check_rows(out, cases):
    with open(out) as f:
        rows = json.load(f)
    assert len(rows) == len(cases)
    for row, case in zip(rows, cases, strict=True):
        assert row["rel_diff"] <= TOL, (case, row["rel_diff"])
        assert row["ok"]
        assert all(b > 0 for b in row["peak_rss_bytes"]) and len(row["peak_rss_bytes"]) == 2
    return rows


def _assert_empty(hosts):
    netns.teardown(hosts)
    assert not set(netns.ours()) & set(hosts.names)


def test_torchrun_two_nodes(request, shard_sets, tmp_path):
    hosts = hosts_fixture(request, 2)
    cases, out = _cases(shard_sets), str(tmp_path / "rows.json")
    procs = [_torchrun(hosts, shard_sets, cases, out, node) for node in (0, 1)]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err[-3000:]
    rows = _check_rows(out, cases)
    print("torch-ddp across 2 namespaces:", [(r["startup_s"], r["time_per_step_s"], r["tx_bytes_per_step"])
                                             for r in rows])
    _assert_empty(hosts)


def test_dask_scheduler_two_workers(request, shard_sets, tmp_path):
    hosts = hosts_fixture(request, 3)
    sched, servers = _dask_cluster(hosts)
    cases, out = _cases(shard_sets), str(tmp_path / "rows.json")
    client = _client(hosts, shard_sets, cases, out, sched)
    _, err = client.communicate(timeout=120)
    assert client.returncode == 0, err[-3000:]
    rows = _check_rows(out, cases)
    print("numpy-dask across 3 namespaces:", [(r["startup_s"], r["time_per_step_s"]) for r in rows])
    _assert_empty(hosts)
    assert all(p.wait(10) is not None for p in servers)


def _fault_case(sets, ready):
    case = _cases(sets, steps=10_000_000)[0]
    case["ready"] = ready
    return [case]


def _wait_ready(path, procs, limit=90):
    deadline = time.monotonic() + limit
    while not os.path.exists(path):
        assert time.monotonic() < deadline, "the run never got ready"
        assert all(p.poll() is None for p in procs), [p.communicate()[1][-2000:] for p in procs if p.poll() is not None]
        time.sleep(0.1)
    time.sleep(0.5)


@pytest.mark.parametrize("fault", ["link-down", "kill"])
def test_torchrun_fault(request, shard_sets, tmp_path, fault):
    hosts = hosts_fixture(request, 2)
    ready = str(tmp_path / "ready")
    procs = [_torchrun(hosts, shard_sets, _fault_case(shard_sets, ready), str(tmp_path / "rows.json"), n)
             for n in (0, 1)]
    _wait_ready(ready, procs)
    t0 = time.monotonic()
    if fault == "link-down":
        subprocess.run(["ip", "link", "set", hosts.outer[1], "down"], check=True)
    else:
        hosts.kill_all(1)
    _, err = procs[0].communicate(timeout=TIMEOUT_S * 6)
    took = time.monotonic() - t0
    assert procs[0].returncode != 0
    lines = [line for line in err.splitlines() if line.startswith("driver:")]
    assert len(lines) == 1, err[-3000:]
    assert hosts.addrs[1] in lines[0] or "lost contact with rank(s)" in lines[0], lines[0]
    assert took < TIMEOUT_S * 6
    print(f"torch-ddp {fault}: node 0 ended after {took:.1f} s: {lines[0][:300]}")
    # link-down: the host cut off (node 1) is not waited for: its torchrun agent keeps waiting for the
    # rendezvous store it can no longer reach (beyond read_timeout); the teardown kills it
    _assert_empty(hosts)


def test_dask_worker_killed(request, shard_sets, tmp_path):
    hosts = hosts_fixture(request, 3)
    sched, servers = _dask_cluster(hosts)
    ready = str(tmp_path / "ready")
    client = _client(hosts, shard_sets, _fault_case(shard_sets, ready), str(tmp_path / "rows.json"), sched)
    _wait_ready(ready, [client])
    t0 = time.monotonic()
    hosts.kill_all(2)
    _, err = client.communicate(timeout=TIMEOUT_S * 6)
    took = time.monotonic() - t0
    assert client.returncode == 1
    lines = [line for line in err.splitlines() if line.startswith("driver:")]
    assert len(lines) == 1 and hosts.addrs[2] in lines[0], err[-3000:]
    print(f"numpy-dask kill: client ended after {took:.1f} s: {lines[0][:300]}")
    _assert_empty(hosts)


def test_bench_scale_simulated_hosts(tmp_path):
    """``bench scale --simulate-hosts 2``: one row per engine at world size 2 across two namespaces,
    the figures across hosts filled in, the agreement kept, no namespace left behind."""
    out = tmp_path / "scale"
    proc = run_cli("scale", "--simulate-hosts", "2", "--backends", "torch-ddp", "numpy-dask", "--workers", "2",
                   "--datasets", "synthetic-120x4", "--dtype", "float64", "--iters", "3", "--out", str(out))
    rows = pd.read_csv(out / "runs.csv")
    if (rows["status"] == "skipped").all() and rows["reason"].str.contains("namespaces").all():
        pytest.skip(rows["reason"].iloc[0])
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    view = pd.read_csv(out / "scale.csv")
    assert list(view.columns) == scale.COLUMNS and (out / "scale.png").is_file()
    assert sorted(view["backend"]) == ["numpy-dask", "torch-ddp"]
    for _, r in view.iterrows():
        assert r["status"] == "ok" and r["hosts"] == 2 and r["scaling"] == "strong", r.to_dict()
        assert r["rel_dparam"] <= TOL
        for col in ("startup_s", "time_per_iter_s", "collective_s", "tx_bytes_per_step", "rx_bytes_per_step",
                    "peak_mem_mb"):
            assert r[col] > 0, (r["backend"], col, r[col])
        assert len(str(r["worker_peak_mb"]).split()) == 2
    assert not netns.ours()


def test_bench_scale_without_namespaces_skips_with_the_reason(tmp_path, monkeypatch):
    """Where namespaces cannot be made (not root), every row across hosts is skipped with the reason."""
    def refuse(count):
        raise netns.NetnsUnavailable("cannot create network namespaces (needs root or CAP_NET_ADMIN): test")

    monkeypatch.setattr(netns, "build", refuse)
    out = tmp_path / "scale"
    proc = run_cli("scale", "--simulate-hosts", "2", "--backends", "torch-ddp", "numpy-dask", "--workers", "2",
                   "--datasets", "synthetic-120x4", "--iters", "3", "--out", str(out))
    rows = pd.read_csv(out / "scale.csv")
    assert proc.returncode == 1 and (rows["status"] == "skipped").all()
    assert rows["reason"].str.startswith("--simulate-hosts: cannot create network namespaces").all()


def test_a_scheduler_that_is_not_an_address_is_refused_up_front(tmp_path):
    r = run_cli("scale", "--scheduler", "notaurl", "--backends", "numpy-dask", "--datasets", "iris",
                "--out", tmp_path / "out")
    assert r.returncode == 2 and "--scheduler must be a Dask scheduler address" in r.stderr, r.stderr
    assert not (tmp_path / "out").exists()
