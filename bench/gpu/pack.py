"""The ending of ``python -m bench gpu``: ``summary.md``, ``env.json``, ``runs.csv``, the crossover
files and ``gpu-run.tar.gz`` (each stage's rows and loss curves, the reports, the floors), written
whatever ended the stages."""

from __future__ import annotations

import shutil
import sys
import tarfile
from pathlib import Path

import pandas as pd

from .. import atomic, crossover, records, report
from ..report.format import format_number
from .deadline import Clock
from .plan import ARCHIVE_MAX_BYTES, plan_for
from .stages import Runner, Stage


def _fmt(x, spec=".3g", unit=""):
    return format_number(x, "{:" + spec + "}" + unit)


def gpu_figures(df) -> dict:
    """The closing note's figures from the sweep's rows: the best ``cuda`` row at the largest ``n``
    (d = 100) and its fraction of the device floor; how far the CUDA-event time and the wall time
    of the same rounds agree."""
    out = {"best_gpu_row": None, "event_vs_wall": None}
    if df is None or df.empty:
        return out
    ok = df[(df["status"] == "ok") & df["device"].astype(str).str.startswith("cuda") & df["time_per_iter_s"].notna()]
    big = ok[ok["d"] == 100]
    if len(big):
        top = big[big["n"] == big["n"].max()]
        r = top.loc[top["time_per_iter_s"].astype(float).idxmin()]
        out["best_gpu_row"] = {k: (None if pd.isna(r[k]) else r[k]) for k in
                               ("backend", "dtype", "n", "d", "time_per_iter_s", "achieved_gbps", "roofline_fraction",
                                "event_time_per_iter_s")}
    ev = ok[ok["event_time_median_s"].notna()]
    if len(ev):
        diff = (ev["time_median_s"].astype(float) - ev["event_time_median_s"].astype(float))
        rel = diff / ev["time_median_s"].astype(float)
        out["event_vs_wall"] = {"rows": int(len(ev)), "median_wall_minus_event_s": float(diff.median()),
                                "median_relative": float(rel.median()), "max_relative": float(rel.abs().max())}
    return out


def missing_coverage(df, stages: list[Stage], expected: dict) -> list[str]:
    """What the smoke did not reach: a stage that did not run or ended in error, a chunk left out,
    a backend of a stage without any row (a ``skipped`` row counts: it says why)."""
    out = []
    for st in stages:
        if st.error:
            out.append(f"stage {st.name}: error {st.error}")
        elif st.chunks_run == 0 and st.name != "floors":
            out.append(f"stage {st.name}: did not run")
        out += [f"stage {st.name}: {what} not run ({why})" for what, why in st.not_run]
    for stage, backends in expected.items():
        have = set() if df is None or df.empty else set(df[df["stage"] == stage]["backend"].astype(str))
        out += [f"stage {stage}: no row of `{b}`" for b in backends if b not in have]
    return out


def summary_text(env: dict, figures: dict, stages: list[Stage], df, lines, clock: Clock, devices, smoke: bool,
                 missing: list[str]) -> str:
    gpu_env = env.get("gpu") if env and isinstance(env.get("gpu"), dict) else {}
    cuda = any(d.startswith("cuda") for d in devices)
    s = ["# GPU half: floors, default comparison, crossover (`python -m bench gpu`)", ""]
    if smoke:
        s += ["**Smoke run (`--smoke`)**: every stage and backend on tiny sizes; its numbers say nothing about "
              "any hardware's speed.", ""]
        s += (["**The smoke did not reach everything** (exit code 1):", ""] + [f"- {m}" for m in missing] + [""]
              if missing else ["Every stage ran, and every backend of every stage has a row.", ""])
    if not cuda or not gpu_env.get("name"):
        s += ["**No CUDA device was used in this run: it holds no GPU figure.**", ""]
    if env.get("environment_error"):
        s += [f"**The environment could not be read in full**: {env['environment_error']}", ""]
    s += [f"- devices: {', '.join(devices)}; GPU: {gpu_env.get('name') or '—'} (driver {gpu_env.get('driver') or '—'}, "
          f"CUDA {gpu_env.get('cuda') or '—'}); CPU: {(env.get('cpu') or {}).get('model', '—')}",
          f"- git {env.get('git_sha', '—')}; total {clock.elapsed():.0f} s"
          + ("; **the hard deadline was reached**: the stage running then was ended, its finished rows kept"
             if clock.hit else ""), "",
          "## Floors and roofs (measured in this run)", "",
          "| figure | value |", "|---|---|"]
    for key, unit in (("host_read", " GB/s"), ("host_gflops_float32", " GFLOP/s"), ("host_gflops_float64", " GFLOP/s"),
                      ("device_read", " GB/s"), ("device_copy", " GB/s"), ("device_gflops_float32", " GFLOP/s"),
                      ("device_gflops_float64", " GFLOP/s")):
        s.append(f"| {key} | {_fmt(figures.get(key), 'g', unit)} |")
    s += ["", "## Stages and budget", "", "| stage | planned end (s) | ran (s) | chunks run | not run |",
          "|---|---|---|---|---|"]
    for st in stages:
        nr = "; ".join(f"{w} ({why})" for w, why in st.not_run) or "—"
        s.append(f"| {st.name} | {st.end:.0f} | {st.seconds:.0f} | {st.chunks_run} | {nr}"
                 + (f" **error: {st.error}**" if st.error else "") + " |")
    s += [""]
    if df is not None and not df.empty:
        counts = df.groupby(["stage", "status"]).size().unstack(fill_value=0)
        s += ["## Rows (by stage and status)", "", "```", counts.to_string(), "```", ""]
    s += ["## Crossover (sweep, d = 100; `crossover.csv` holds every d)", ""]
    if lines:
        s += [f"- {x}" for x in lines]
    else:
        s += ["- no backend has both a CPU and a GPU row here: no crossover to state"
              + ("" if cuda else " (no CUDA device in this run)")]
    g = gpu_figures(df[df["stage"] == "sweep"] if df is not None and not df.empty else None)
    b, e = g["best_gpu_row"], g["event_vs_wall"]
    s += ["", "## The GPU's own figures", ""]
    if b:
        s.append(f"- best GPU row at the largest n: `{b['backend']}` {b['dtype']} n = {int(b['n'])}, "
                 f"d = {int(b['d'])}: {_fmt(b['time_per_iter_s'])} s/step, {_fmt(b['achieved_gbps'], '.4g')} GB/s = "
                 f"{_fmt(b['roofline_fraction'], '.1%')} of the measured device read bandwidth")
    else:
        s.append("- no GPU row was timed")
    if e:  # the events bracket the whole round with the device idle at both ends: a cross-check, not an overhead
        s.append(f"- CUDA-event vs wall time of the same rounds ({e['rows']} cuda rows): they differ by "
                 f"{e['median_relative']:.1%} (median), at most {e['max_relative']:.1%}; the events bracket the "
                 "whole call, host time included, so this checks the wall clock, it does not measure launch overhead")
    if df is not None and not df.empty:
        sk = df[df["status"] == "skipped"]
        if len(sk):
            s += ["", "## Skipped (missing library or device)", ""]
            for (backend, device), grp in sk.groupby(["backend", "device"]):
                s.append(f"- `{backend}@{device}` ({len(grp)} rows): {str(grp['reason'].iloc[0])[:200]}")
    s += ["", "`gpu-run.tar.gz` holds each stage's runs.csv and losses.csv, the reports of the default comparison "
          "and of the sweep (`<stage>/report/`), floors.json, env.json and this summary."]
    return "\n".join(s) + "\n"


def pack(out: Path, work: Path, run_id, env, figures, stages, runner: Runner, clock, devices, smoke: bool,
         interrupted: bool, expected: dict) -> int:
    """Write the files (see the module docstring); returns the exit code: 130 interrupted, 1 a row
    or a stage failed, a stage that did not run at all, or (smoke) anything left unreached; else 0."""
    out = Path(out)
    df = None
    if runner.rows:
        df = records.to_frame([r for _, r in runner.rows])
        df.insert(0, "stage", pd.Series([s for s, _ in runner.rows], dtype="string"))
        atomic.write_csv(df, out / "runs.csv")
    sweep = df[df["stage"] == "sweep"].drop(columns="stage") if df is not None else None
    lines = []
    note = ("SMOKE RUN (--smoke): not a measurement of any hardware" if smoke else
            f"{(env.get('gpu') or {}).get('name') or 'no GPU'} vs {(env.get('cpu') or {}).get('model', 'CPU')}")
    try:
        if sweep is not None and len(sweep):
            _table, lines = crossover.write(sweep, figures, out, title_note=note)
        else:  # no sweep row (the deadline came first): the table's header, no plot
            atomic.write_csv(pd.DataFrame(columns=crossover.CROSSOVER_COLUMNS), out / "crossover.csv")
    except Exception as exc:
        runner.notes.append(f"crossover analysis failed: {type(exc).__name__}: {exc}")
        runner.failed = True
    for stage in ("default", "sweep") if plan_for(smoke)["reports"] else ():  # inside the archive
        part = df[df["stage"] == stage].drop(columns="stage") if df is not None else None
        if part is not None and len(part):
            try:
                curves = runner.curves.get(stage) or []
                report.write_report(part, pd.concat(curves, ignore_index=True) if curves else None, env,
                                    work / stage / "report")
            except Exception as exc:
                runner.notes.append(f"{stage} report failed: {type(exc).__name__}: {exc}")
                runner.failed = runner.failed or smoke  # the smoke is there to find exactly this
    missing = missing_coverage(df, stages, expected) if smoke else []
    unrun = [st.name for st in stages if st.chunks_run == 0 and st.name != "floors"]
    atomic.write_json(figures, work / "floors.json")
    text = summary_text(env, figures, stages, df, lines, clock, devices, smoke, missing)
    if runner.notes:
        text += "\n## Notes\n\n" + "\n".join(f"- {n}" for n in runner.notes) + "\n"
    atomic.write_text(text, out / "summary.md")
    shutil.copy(out / "summary.md", work / "summary.md")
    failed = runner.failed or bool(missing) or bool(unrun)
    status = "interrupted" if interrupted else ("failed" if failed else "complete")
    code = 130 if interrupted else (1 if failed else 0)
    env = {**env, "roofline": figures, "status": status, "exit_code": code, "deadline_hit": clock.hit,
           "seconds": round(clock.elapsed(), 1), "smoke": smoke, "tiny": smoke, "not_reached": missing,
           "stages_not_run": unrun,
           "stages": [{"name": s.name, "planned_end_s": round(s.end, 1), "seconds": round(s.seconds, 1),
                       "chunks_run": s.chunks_run, "not_run": s.not_run, "error": s.error} for s in stages],
           "gpu_figures": gpu_figures(sweep), "verdicts": lines, "notes": runner.notes}
    atomic.write_json(env, out / "env.json")
    shutil.copy(out / "env.json", work / "env.json")

    def _tar(tmp, losses=True):
        with tarfile.open(tmp, "w:gz") as tf:
            tf.add(work, arcname=f"gpu-run-{run_id}",
                   filter=None if losses else (lambda ti: None if ti.name.endswith("losses.csv") else ti))

    atomic.write_atomic(out / "gpu-run.tar.gz", _tar)
    if (out / "gpu-run.tar.gz").stat().st_size > ARCHIVE_MAX_BYTES:
        atomic.write_atomic(out / "gpu-run.tar.gz", lambda tmp: _tar(tmp, losses=False))
        atomic.write_text(text + f"\n(`gpu-run.tar.gz` left out the loss curves: with them it was over "
                                  f"{ARCHIVE_MAX_BYTES / 2**20:.0f} MiB.)\n", out / "summary.md")
    print(f"bench gpu: {status} in {clock.elapsed():.0f} s; wrote {out}/ ("
          + ", ".join(sorted(p.name for p in out.iterdir() if not p.name.startswith("."))) + ")", file=sys.stderr)
    for line in lines + [f"not reached: {m}" for m in missing]:
        print(f"  {line}", file=sys.stderr)
    return code
