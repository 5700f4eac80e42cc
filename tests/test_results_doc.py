"""`python -m bench report`: a saved run's summary and plots redrawn, and docs/results.md written
from it with the machine named and summary.md's verdict (fabricated run, no training)."""

from __future__ import annotations

import types

import pytest

from bench.report.documents import cmd_report, results_markdown
from tests.fabricate import environment, fabricate_losses, fabricate_rows, write_run


def _args(**kw):
    return types.SimpleNamespace(**{"folder": None, "out": None, "doc": None, "schema": None, **kw})


def _run(tmp_path):
    rows = fabricate_rows()
    return write_run(tmp_path / "run", rows, environment(), fabricate_losses(rows))


def test_results_doc_names_the_machine_and_has_the_verdict_and_tables(tmp_path):
    folder = _run(tmp_path)
    (folder / "trajectory").mkdir()
    (folder / "trajectory" / "trajectory.csv").write_text(
        "dataset,dtype,formulation,backend_a,backend_b,n_iters,first_divergence_step,max_rel_deviation,"
        "saturated_at_step,status\nsynthetic-1000x10-x8,float32,probs,numpy,torch,1000,1,0.015,61,ok\n")
    text = results_markdown(folder, tmp_path / "docs" / "results.md")
    env = environment()
    assert env["cpu"]["model"] in text and "## Machine" in text
    assert "## Verdict" in text and "## Time per step, float32" in text
    assert "## All rows" not in text  # every row stays in summary.md
    assert "### trajectory" in text and "| synthetic-1000x10-x8 | float32 | probs |" in text
    assert "](../run/" in text  # links relative to the document


@pytest.mark.slow  # redraws every plot of a run
def test_report_command_redraws_and_writes_both_documents(tmp_path, capsys):
    folder = _run(tmp_path)
    out = tmp_path / "redrawn"
    rc = cmd_report(_args(folder=str(folder), out=str(out), doc=str(tmp_path / "d" / "results.md"),
                          schema=str(tmp_path / "d" / "schema.md")))
    assert rc == 0
    assert (out / "summary.md").is_file() and list(out.glob("*.png"))
    assert (tmp_path / "d" / "results.md").is_file() and (tmp_path / "d" / "schema.md").is_file()
    assert not (folder / "summary.md").exists()  # --out: the run folder is left as it was


def test_report_command_refuses_what_it_cannot_read(tmp_path, capsys):
    assert cmd_report(_args()) == 2
    assert cmd_report(_args(folder=str(tmp_path))) == 2
    assert "holds no runs.csv" in capsys.readouterr().err
