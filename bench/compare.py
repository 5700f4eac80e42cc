"""``python -m bench compare A B``: is run B faster or slower than run A, row by row, and is it real?

A and B are each a saved run folder (``runs.csv``, and ``env.json`` beside it) or a pytest-benchmark
JSON file (``pytest --benchmark-json=FILE``; its ``stats.data`` holds the rounds when written with
``--benchmark-save-data``; this project's suite keeps the whole ``runs.csv`` row in
``extra_info["row"]``, other suites their fields in ``extra_info``).

Per matching row (on ``case_id`` when both sides record it, else on backend, device, dtype,
formulation, dataset, batch size and l2):

- ``ratio`` = B's median time per step / A's (> 1: B is slower);
- ``p_value``: two-sided Mann–Whitney U over the timed rounds (``times_s`` divided by the steps;
  ``scipy.stats.mannwhitneyu``), NaN when either side stored no rounds;
- ``call``: ``slower`` when the difference is significant and ``ratio > 1 + threshold``, ``faster``
  when significant and ``ratio < 1 / (1 + threshold)``, else ``same``. Significant means
  ``p < alpha``. With few rounds the U test cannot reach ``alpha`` at all (3 vs 3 rounds: the
  smallest two-sided p is 0.1); then, and only then, significant means the rounds do not overlap
  (every B round beyond every A round), and the ``test`` column says so. Without stored rounds the
  call rests on the threshold alone (``test`` = ``none``);
- agreement (``verdict``) changes, and the thread counts of both sides.

A case of both runs whose ``dataset_sha256`` differs (the same file name or options on other data)
is no match: it stays in ``compare.csv`` with no ratio, ``call`` ``—`` and the reason in ``note``,
and the console counts it apart from the rows only one side has.

Environment differences (versions, CPU, GPU, threads, BLAS, git sha) come from the two env.json.
Writes ``compare.csv`` and ``env_diff.csv`` to ``--out`` and prints a table. ``--out`` follows the
folder rules of every command (:func:`bench.output.claim_folder`): a folder that already holds a
comparison is refused unless ``--overwrite``, and a run folder is never written into. Exit status: 1 when
``--fail-above PCT`` is given and a matched row is slower by more than PCT percent with rounds that
do not call it noise (like pytest-benchmark's ``--benchmark-compare-fail``; ``--threshold`` plays no
part in it), 2 with one ``error:`` line for bad input (a file cut short, a missing column, an empty
time per step on a row that ran, a non-finite percentage), else 0.
"""

from __future__ import annotations

import argparse
import csv
import datetime as _dt
import json
import math
import sys
import uuid
from pathlib import Path

import numpy as np
import pandas as pd

from .atomic import write_atomic
from .output import RUN_FILES, claim_folder
from .records import as_run, read_run
from .report.format import as_float, format_time
from .report.stats import round_times_per_step

RESULTS = Path(__file__).resolve().parents[1] / "results"
MATCH_KEYS = ["backend", "device", "dtype", "formulation", "dataset", "batch_size", "l2", "optimizer"]
# every row must name these; a row that ran (status ok) must have a time per step
REQUIRED = ["backend", "device", "dtype", "formulation", "dataset", "status", "time_per_iter_s"]
_SKIP_ENV = {"run_id", "created_utc", "notes", "datetime"}
OWNED = ("compare.csv", "env_diff.csv")  # what `compare` writes into --out


class CompareError(ValueError):
    """Bad input: reported as one ``error:`` line and exit status 2."""


def _percent(text: str) -> float:
    try:
        value = float(str(text).strip().rstrip("%"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a percentage such as 5 or 5%, got {text!r}") from None
    if not math.isfinite(value) or value < 0:  # nan or inf would silently switch the call or the CI gate off
        raise argparse.ArgumentTypeError(f"expected a finite percentage >= 0, got {text!r}")
    return value


def _alpha(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"expected a significance level between 0 and 1, got {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("a", metavar="A",
                        help="baseline: a run folder (runs.csv + env.json) or a pytest-benchmark JSON file")
    parser.add_argument("b", metavar="B", help="the run to judge against A (same kinds as A)")
    parser.add_argument("--threshold", type=_percent, default=5.0, metavar="PCT",
                        help="smallest change in median time per step called faster/slower, in percent (default: 5)")
    parser.add_argument("--alpha", type=_alpha, default=0.05,
                        help="significance level of the Mann-Whitney U test over the timed rounds (default: 0.05)")
    parser.add_argument("--fail-above", type=_percent, default=None, metavar="PCT",
                        help="exit 1 when a matched row is slower by more than PCT percent, unless its rounds show "
                             "the difference is not significant; independent of --threshold (default: never)")
    parser.add_argument("--out", type=Path, default=None,
                        help="folder for compare.csv and env_diff.csv (default: a new folder under results/compare/); "
                             "never a run folder")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace compare.csv and env_diff.csv already in --out (default: refuse such a folder)")


# ----------------------------------------------------------------------------------------------
# loading

def load_run(path) -> tuple[pd.DataFrame, dict, bool]:
    """(rows, env, has_case_id) of a run folder or a pytest-benchmark JSON file; CompareError if neither."""
    path = Path(path)
    if not path.exists():
        raise CompareError(f"{path}: no such file or folder")
    if path.is_dir():
        runs = path / "runs.csv"
        if not runs.is_file():
            raise CompareError(f"{path}: not a run folder (no runs.csv in it)")
        records = _check_csv_shape(runs)
        try:
            run = read_run(path)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise CompareError(f"{runs}: not a readable CSV ({exc})") from None
        header = records[0]
        if run.rows.empty or "backend" not in header:
            raise CompareError(f"{runs}: no rows with a backend column")
        _check_rows(run.rows, runs, header)
        has_id = "case_id" in header and all(len(r) > header.index("case_id") and r[header.index("case_id")]
                                             for r in records[1:])
        return run.rows, run.env, has_id
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise CompareError(f"{path}: neither a run folder nor a pytest-benchmark JSON file") from None
    if not isinstance(data, dict) or not isinstance(data.get("benchmarks"), list) or not data["benchmarks"]:
        raise CompareError(f"{path}: a JSON file without pytest-benchmark's 'benchmarks' list")
    rows, env, has_id = _from_benchmark_json(data, path)
    _check_rows(rows, path)
    return rows, env, has_id


def _check_csv_shape(path: Path) -> list[list[str]]:
    """The CSV records of a ``runs.csv`` (header first); one cut short (mid-line, or a row with fewer
    fields than the header) is refused: pandas would silently fill the missing cells."""
    try:
        text = path.read_text()
    except UnicodeDecodeError as exc:
        raise CompareError(f"{path}: not a readable CSV ({exc})") from None
    if text and not text.endswith("\n"):
        raise CompareError(f"{path}: ends mid-line (the file is cut short)")
    records = [r for r in csv.reader(text.splitlines(keepends=True)) if r]
    if not records:
        return [[]]
    width = len(records[0])
    for i, rec in enumerate(records[1:], start=1):
        if len(rec) != width:
            raise CompareError(f"{path}: row {i} has {len(rec)} fields where the header has {width} "
                               f"(the file is cut short or damaged)")
    return records


def _check_rows(df: pd.DataFrame, source, columns=None) -> None:
    """Every row names what ran and how it ended; a row that ran has a time per step. ``columns``:
    the ones the file itself has (reading fills in the others), default ``df``'s."""
    columns = df.columns if columns is None else columns
    missing = [c for c in REQUIRED if c not in columns]
    if missing:
        raise CompareError(f"{source}: no {', '.join(missing)} column{'s' if len(missing) > 1 else ''} "
                           f"(every row needs {', '.join(REQUIRED)})")
    for col in REQUIRED:
        empty = df[col].isna() & ((df["status"] == "ok").fillna(True) if col == "time_per_iter_s" else True)
        if empty.any():
            i = int(np.flatnonzero(empty.to_numpy())[0]) + 1
            ran = " although it ran (status ok)" if col == "time_per_iter_s" else ""
            raise CompareError(f"{source}: row {i} has an empty {col}{ran} ({int(empty.sum())} such row"
                               f"{'s' if empty.sum() > 1 else ''})")


def _from_benchmark_json(data: dict, path: Path) -> tuple[pd.DataFrame, dict, bool]:
    """Rows of a pytest-benchmark JSON: this project's suite stores the whole ``runs.csv`` row under
    ``extra_info["row"]``; other suites' fields may sit in ``extra_info`` itself (and ``params``).
    ``stats.data`` holds seconds per ``run()`` (``n_iters`` steps), so a time per step needs
    ``n_iters``."""
    rows, has_id = [], True
    for bm in data["benchmarks"]:
        if not isinstance(bm, dict):
            raise CompareError(f"{path}: a benchmark entry that is not an object")
        info = dict(bm.get("extra_info") or {})
        nested = info.pop("row", None)
        stats = bm.get("stats") or {}
        params = bm.get("params") or {}
        name = bm.get("fullname") or bm.get("name")
        row = {k: params[k] for k in ("backend", "device", "dtype", "formulation", "dataset") if k in params}
        row.update(info)
        if isinstance(nested, dict):
            row.update(nested)
        has_id = has_id and bool(row.get("case_id"))
        row.setdefault("case_id", name)
        n_iters = as_float(row.get("n_iters"))
        times = stats.get("data")
        if stats.get("median") is not None or times:
            if not n_iters > 0:
                raise CompareError(f"{path}: benchmark {name} records no n_iters (in extra_info or "
                                   f"extra_info['row']), so its time per step is unknown")
            row["times_s"] = " ".join(repr(float(t)) for t in times) if times else None
        if stats.get("median") is not None:
            row["time_median_s"] = stats["median"]
            if pd.isna(row.get("time_per_iter_s")):
                row["time_per_iter_s"] = stats["median"] / n_iters
            if pd.isna(row.get("iqr_per_iter_s")):
                row["iqr_per_iter_s"] = (stats.get("iqr") or 0.0) / n_iters
        row["rounds"] = stats.get("rounds")
        row.setdefault("status", "ok")
        rows.append(row)
    mi = data.get("machine_info") or {}
    cpu = mi.get("cpu") or {}
    ci = data.get("commit_info") or {}
    env = {"python": mi.get("python_version"), "platform": f"{mi.get('system', '')} {mi.get('release', '')}".strip(),
           "cpu": {"model": cpu.get("brand_raw") or mi.get("processor"), "logical_cores": cpu.get("count"),
                   "machine": mi.get("machine")},
           "git_sha": ci.get("id"), "versions": {"pytest-benchmark": data.get("version")}}
    if rows and "threads" in rows[0]:
        env["threads"] = rows[0]["threads"]
    return as_run(pd.DataFrame(rows)).rows, env, has_id


# ----------------------------------------------------------------------------------------------
# comparing

def min_p_value(n_a: int, n_b: int) -> float:
    """Smallest two-sided p the exact Mann-Whitney U test can give with these sample sizes."""
    if n_a < 1 or n_b < 1:
        return 1.0
    return min(1.0, 2.0 / math.comb(n_a + n_b, n_a))


def significance(a: np.ndarray | None, b: np.ndarray | None, alpha: float) -> tuple[float, bool | None, str]:
    """(p-value, significant?, test used) for rounds ``a`` and ``b`` (see the module docstring)."""
    if a is None or b is None or len(a) < 1 or len(b) < 1:
        return math.nan, None, "none"
    from scipy.stats import mannwhitneyu

    p = float(mannwhitneyu(b, a, alternative="two-sided").pvalue)
    floor = min_p_value(len(a), len(b))
    if floor >= alpha:
        separated = bool(a.max() < b.min() or b.max() < a.min())
        return p, separated, f"separation ({len(a)} vs {len(b)} rounds: p >= {floor:.2g})"
    return p, p < alpha, "mann-whitney"


def _key_frame(df: pd.DataFrame, by_case_id: bool) -> pd.DataFrame:
    df = df.copy()
    if by_case_id:
        df["_key"] = df["case_id"].astype(str)
    else:
        bs = df["batch_size"].astype("Float64").map(lambda v: "full" if pd.isna(v) else str(int(v)))
        df["_key"] = (df["backend"].astype(str) + "|" + df["device"].astype(str) + "|" + df["dtype"].astype(str) + "|"
                      + df["formulation"].astype(str) + "|" + df["dataset"].astype(str) + "|" + bs + "|"
                      + df["l2"].astype(float).map("{:g}".format)
                      + "|" + df["optimizer"].fillna("gd").astype(str))  # part of a row's identity, as in the case id
    return df.drop_duplicates("_key")


def compare_runs(a: pd.DataFrame, b: pd.DataFrame, threshold: float = 0.05, alpha: float = 0.05,
                 by_case_id: bool = True) -> pd.DataFrame:
    """One row per matching case: times, ratio B/A, p-value, call, agreement change, threads. ``a``
    and ``b`` as :func:`bench.records.read_run` gives them."""
    a = _key_frame(a, by_case_id)
    b = _key_frame(b, by_case_id)
    keep = ["_key", "case_id", *MATCH_KEYS, "loop"]
    m = a.merge(b, on="_key", suffixes=("_a", "_b"))
    # the same case id on different data (two files sharing a name, another --standardize) is no match
    ha, hb = m["dataset_sha256_a"], m["dataset_sha256_b"]
    same_data = (ha.isna() | hb.isna() | (ha == hb)).fillna(True).astype(bool)
    out = [_other_data(r, keep) for _, r in m[~same_data].iterrows()]
    m = m[same_data]
    for _, r in m.iterrows():
        ra = {c[:-2]: r[c] for c in r.index if c.endswith("_a")}
        rb = {c[:-2]: r[c] for c in r.index if c.endswith("_b")}
        ta, tb = as_float(ra["time_per_iter_s"]), as_float(rb["time_per_iter_s"])
        ratio = tb / ta if ta > 0 and not math.isnan(tb) else math.nan
        rounds_a, rounds_b = round_times_per_step(ra), round_times_per_step(rb)
        both_ok = str(ra["status"]) == "ok" and str(rb["status"]) == "ok" and not math.isnan(ratio)
        p, sig, test = significance(rounds_a, rounds_b, alpha) if both_ok else (math.nan, None, "none")
        if not both_ok:
            call = "—"
        elif sig is False:
            call = "same"
        elif ratio > 1 + threshold:
            call = "slower"
        elif ratio < 1 / (1 + threshold):
            call = "faster"
        else:
            call = "same"
        va, vb = ra.get("verdict"), rb.get("verdict")
        va = None if va is None or pd.isna(va) else str(va)
        vb = None if vb is None or pd.isna(vb) else str(vb)
        row = {k: ra[k] for k in keep[1:]}
        row["case_id"] = ra["case_id"]
        row.update({
            "time_per_iter_a_s": ta, "time_per_iter_b_s": tb, "ratio": ratio,
            "change_pct": (ratio - 1) * 100 if not math.isnan(ratio) else math.nan,
            "rounds_a": 0 if rounds_a is None else len(rounds_a), "rounds_b": 0 if rounds_b is None else len(rounds_b),
            "p_value": p, "test": test, "significant": sig, "call": call,
            "verdict_a": va, "verdict_b": vb,
            "agreement_change": "" if va == vb else f"{va or '—'} -> {vb or '—'}",
            "status_a": ra["status"], "status_b": rb["status"],
            "threads_a": ra.get("threads"), "threads_b": rb.get("threads"), "note": "",
        })
        out.append(row)
    cols = ["case_id", *MATCH_KEYS, "loop", "time_per_iter_a_s", "time_per_iter_b_s", "ratio", "change_pct",
            "rounds_a", "rounds_b", "p_value", "test", "significant", "call", "verdict_a", "verdict_b",
            "agreement_change", "status_a", "status_b", "threads_a", "threads_b", "note"]
    return pd.DataFrame(out, columns=cols)


def _other_data(r, keep) -> dict:
    """A case both runs hold on different data (their ``dataset_sha256`` differ): no ratio, the reason."""
    row = {k: r[f"{k}_a"] for k in keep[1:]}
    row["case_id"] = r["case_id_a"]
    short = {s: str(r[f"dataset_sha256_{s}"])[:12] for s in ("a", "b")}
    row.update({"time_per_iter_a_s": as_float(r["time_per_iter_s_a"]),
                "time_per_iter_b_s": as_float(r["time_per_iter_s_b"]),
                "ratio": math.nan, "change_pct": math.nan, "p_value": math.nan, "test": "none",
                "significant": None, "call": "—", "agreement_change": "",
                "status_a": r["status_a"], "status_b": r["status_b"],
                "note": f"left out: different data (dataset_sha256 {short['a']}... in A, {short['b']}... in B)"})
    return row


def left_out(cmp: pd.DataFrame) -> pd.Series:
    """The rows of :func:`compare_runs` that are no match (the same case on different data)."""
    return cmp["note"].fillna("").astype(str).str.startswith("left out")


def _flatten(obj, prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            if not prefix and k in _SKIP_ENV:
                continue
            out.update(_flatten(v, f"{prefix}{k}."))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            name = v.get("internal_api") if isinstance(v, dict) and v.get("internal_api") else str(i)
            if isinstance(v, dict) and "filepath" in v:  # a BLAS/OpenMP pool: name it by library, not path
                name = f"{name}:{Path(str(v.get('filepath'))).name.split('-')[0].split('.')[0]}"
                v = {k: x for k, x in v.items() if k != "filepath"}
            out.update(_flatten(v, f"{prefix}{name}."))
    else:
        out[prefix.rstrip(".")] = obj
    return out


def env_differences(env_a: dict, env_b: dict) -> pd.DataFrame:
    """Keys of the two env.json (flattened: ``versions.torch``, ``cpu.model``, ``blas.openblas:...``)
    whose values differ."""
    fa, fb = _flatten(env_a or {}), _flatten(env_b or {})
    rows = [{"key": k, "a": fa.get(k), "b": fb.get(k)} for k in list(dict.fromkeys([*fa, *fb]))
            if str(fa.get(k)) != str(fb.get(k))]
    return pd.DataFrame(rows, columns=["key", "a", "b"])


# ----------------------------------------------------------------------------------------------
# the command

def _error(message: str) -> int:
    print(f"python -m bench compare: error: {message}", file=sys.stderr)
    return 2


def _claim_out(out: Path | None, overwrite: bool):
    """``--out`` claimed by the rules of every command (locked; one holding compare.csv or
    env_diff.csv refused unless ``overwrite``); a run folder (it holds runs.csv or env.json) never."""
    if out is None:
        stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        out = RESULTS / "compare" / f"{stamp}-{uuid.uuid4().hex[:6]}"
    run_files = [f for f in RUN_FILES if (Path(out) / f).exists()]
    if run_files:
        raise CompareError(f"--out {str(out)!r} is a run folder (it holds {', '.join(run_files)}); compare never "
                           "writes into a run: choose another folder")
    try:
        return claim_folder(out, OWNED, overwrite=overwrite, what="a comparison")
    except ValueError as exc:
        raise CompareError(str(exc)) from None


def cmd_compare(args) -> int:
    try:
        rows_a, env_a, id_a = load_run(args.a)
        rows_b, env_b, id_b = load_run(args.b)
        threshold = args.threshold / 100
        cmp = compare_runs(rows_a, rows_b, threshold, args.alpha, by_case_id=id_a and id_b)
        if cmp.empty or left_out(cmp).all():
            other = f"; {len(cmp)} case(s) of both are on different data (dataset_sha256 differs)" if len(cmp) else ""
            raise CompareError(f"{args.a} and {args.b} have no row in common "
                               f"(matched on {'case_id' if id_a and id_b else '/'.join(MATCH_KEYS)}{other})")
        claim = _claim_out(args.out, getattr(args, "overwrite", False))
    except CompareError as exc:
        return _error(str(exc))
    out = claim.folder
    envd = env_differences(env_a, env_b)
    try:
        write_atomic(out / "compare.csv", lambda tmp: cmp.to_csv(tmp, index=False))
        write_atomic(out / "env_diff.csv", lambda tmp: envd.to_csv(tmp, index=False))
    finally:
        claim.close()
    _print(cmp, envd, args, len(rows_a), len(rows_b))
    print(f"wrote {out / 'compare.csv'} and env_diff.csv")
    if args.fail_above is not None:
        bad = cmp[gate(cmp, args.fail_above)]
        if len(bad):
            worst = bad.sort_values("change_pct").iloc[-1]
            print(f"FAIL: {len(bad)} row(s) slower by more than {args.fail_above:g}% "
                  f"(worst: {worst['case_id']} +{worst['change_pct']:.1f}%)", file=sys.stderr)
            return 1
    return 0


def gate(cmp: pd.DataFrame, fail_above: float) -> pd.Series:
    """Rows that fail ``--fail-above PCT``: both sides ran, B is slower by more than PCT percent, and
    the rounds do not say the difference is noise (``significant`` is not False). ``--threshold``
    plays no part: it only names the ``call``."""
    ran = (cmp["status_a"].astype(str) == "ok") & (cmp["status_b"].astype(str) == "ok")
    noise = cmp["significant"].map(lambda v: v is False or v is np.False_)
    return (ran & (cmp["change_pct"] > fail_above) & ~noise).fillna(False).astype(bool)


def _print(cmp: pd.DataFrame, envd: pd.DataFrame, args, n_a: int, n_b: int) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 160)
    t = Table(title=f"B / A time per step — A: {args.a}  B: {args.b}  "
                    f"(threshold {args.threshold:g}%, alpha {args.alpha:g})")
    for c, j in (("case", "left"), ("A", "right"), ("B", "right"), ("B/A", "right"), ("p", "right"),
                 ("call", "left"), ("agreement", "left"), ("threads", "left")):
        t.add_column(c, justify=j, overflow="fold")
    colour = {"slower": "red", "faster": "green", "same": "white"}
    for _, r in cmp.iterrows():
        call = str(r["call"])
        if r["note"]:
            note = f" ({r['note']})"
        elif call == "—":
            note = f" ({r['status_a']} / {r['status_b']})"
        else:
            note = "" if r["test"] == "mann-whitney" else (" (no rounds)" if r["test"] == "none" else " (separation)")
        threads = f"{_i(r['threads_a'])}" if str(r["threads_a"]) == str(r["threads_b"]) else \
            f"[yellow]{_i(r['threads_a'])} -> {_i(r['threads_b'])}[/yellow]"
        t.add_row(str(r["case_id"]), format_time(r["time_per_iter_a_s"]), format_time(r["time_per_iter_b_s"]),
                  "—" if pd.isna(r["ratio"]) else f"{r['ratio']:.3f}",
                  "—" if pd.isna(r["p_value"]) else f"{r['p_value']:.3g}",
                  f"[{colour.get(call, 'white')}]{call}[/{colour.get(call, 'white')}]{note}",
                  f"[red]{r['agreement_change']}[/red]" if r["agreement_change"] else
                  ("—" if r["verdict_b"] is None or pd.isna(r["verdict_b"]) else str(r["verdict_b"])),
                  threads)
    console.print(t)
    other = left_out(cmp)
    counts = cmp.loc[~other, "call"].value_counts().to_dict()
    apart = (f"; {int(other.sum())} left out as different data: the same case on other data in A and B "
             "(their dataset_sha256 differ)" if other.any() else "")
    console.print(f"{int((~other).sum())} matched rows ({n_a - len(cmp)} only in A, {n_b - len(cmp)} only in B"
                  f"{apart}): {counts}")
    if (cmp["test"].str.startswith("separation")).any():
        console.print("[yellow]note: too few rounds for the U test to reach alpha; those calls rest on whether "
                      "the rounds overlap. Time 5 or more rounds per row for a real test.[/yellow]")
    if envd.empty:
        console.print("environment: no difference between the two env.json")
    else:
        e = Table(title="environment differences")
        for c in ("key", "A", "B"):
            e.add_column(c, overflow="fold")
        for _, r in envd.iterrows():
            e.add_row(str(r["key"]), str(r["a"]), str(r["b"]))
        console.print(e)


def _i(x) -> str:
    return "—" if x is None or pd.isna(x) else str(int(x))
