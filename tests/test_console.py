"""The console a person at the terminal sees (ouroboros.console through the logger plugin): one line per finished
generation or block with its headline metric, read from the metrics file the evaluation wrote; Snakemake's job
stanzas not shown; errors and warnings shown as Snakemake shows them; a dry run left to Snakemake."""
import io
import logging
import re
from types import SimpleNamespace

import pytest

from ouroboros import console
from snakemake_logger_plugin_ouroboros import LogHandler, LogHandlerSettings


def _handler(dryrun=False, quiet=None, stanzas=False):
    settings = SimpleNamespace(printshellcmds=False, nocolor=True, quiet=quiet or set(), debug_dag=False,
                               verbose=False, show_failed_logs=False, stdout=True, dryrun=dryrun)
    h = LogHandler(settings, LogHandlerSettings(stanzas=stanzas))
    h._stream = io.StringIO()
    return h


def _record(msg, level=logging.INFO, **extra):
    r = logging.LogRecord("snakemake", level, __file__, 1, msg, None, None)
    r.__dict__.update(extra)
    return r


def _job(h, jobid, rule, wildcards, outputs):
    h.emit(_record(f" Rule: {rule}, Jobid: {jobid}", event="job_info", jobid=jobid, rule_name=rule,
                   rule_msg=None, wildcards=wildcards, output=outputs, input=[], log=[], reason="", resources={},
                   priority=0, threads=1, indent=False, is_checkpoint=False, printshellcmd=False,
                   is_handover=False, shellcmd="", local=False, benchmark=None))


def _finish(h, jobid, done, total):
    h.emit(_record(f"Finished jobid: {jobid}", event="job_finished", job_id=jobid))
    h.emit(_record(None, event="progress", done=done, total=total))


def test_a_finished_generation_and_block_print_their_headline_metric(tmp_path):
    console.announce({"lm": ("ppl_real", "per token"), "gaussian": ("var_ratio_mean", "")})
    gen = tmp_path / "results/s/lm/replace/seed0/gen2"
    gen.mkdir(parents=True)
    (gen / "metrics.csv").write_text("generation,metric,value\n2,ppl_gen0_mean,7.5\n2,ppl_real,10.923456\n")
    block = tmp_path / "results/s/gaussian/accumulate/seed1/gens0-30"
    block.mkdir(parents=True)
    (block / "metrics.csv").write_text("generation,metric,value\n"
                                       + "".join(f"{g},var_ratio_mean,{1 - g / 100}\n" for g in range(31)))
    h = _handler()
    _job(h, 7, "train", {"exp": "lm", "node": "replace/seed0", "gen": "2"}, [str(gen / "model")])
    _finish(h, 7, 1, 4)
    assert h._stream.getvalue() == ""  # a training job: no line of its own, no stanza
    _job(h, 8, "evaluate", {"exp": "lm", "node": "replace/seed0", "gen": "2"},
         [str(gen / "metrics.csv"), str(gen / "distributions.npz")])
    _finish(h, 8, 2, 4)
    _job(h, 9, "block_evaluate", {"exp": "gaussian", "regime": "accumulate", "seed": "1", "first": "0",
                                  "last": "30"}, [str(block / "metrics.csv")])
    _finish(h, 9, 3, 4)
    lines = h._stream.getvalue().splitlines()
    assert re.fullmatch(r"\[\d+s\] lm/replace/seed0 gen 2: ppl_real 10\.92 per token \| 2 of 4 jobs, about \d+s left",
                        lines[0]), lines
    assert re.fullmatch(r"\[\d+s\] gaussian/accumulate/seed1 gens 0-30: var_ratio_mean 0\.7 at gen 30 \| 3 of 4 jobs.*",
                        lines[1]), lines
    _finish(h, 10, 4, 4)
    assert re.fullmatch(r"\[\d+s\] all 4 jobs done", h._stream.getvalue().splitlines()[-1])


def test_stanzas_and_chatter_are_not_shown_errors_and_plain_messages_are():
    h = _handler()
    for msg in ("Select jobs to execute...", "Execute 2 jobs...", "Building DAG of jobs..."):
        h.emit(_record(msg))
    h.emit(_record("Job stats:\njob count\n", event="run_info"))
    assert h._stream.getvalue() == ""
    h.emit(_record("Nothing to be done (all requested files are present and up to date)."))
    h.emit(_record("Complete log(s): /x/.snakemake/log/a.snakemake.log"))
    h.emit(_record("Exiting because a job execution failed. Look below for error messages", level=logging.ERROR))
    out = h._stream.getvalue()
    assert "Nothing to be done" in out and "Complete log(s)" in out and "Exiting because" in out


def test_a_failed_job_is_shown_as_snakemake_shows_it():
    h = _handler()
    h.emit(_record("Error in rule train", level=logging.ERROR, event="job_error", rule_name="train", rule_msg=None,
                   jobid=3, input=["a"], output=["b"], log=["results/s/logs/train.log"], conda_env=None,
                   shellcmd=None, aux={}, indent=False))
    out = h._stream.getvalue()
    assert "Error in rule train" in out and "results/s/logs/train.log" in out


def test_with_stanzas_the_job_stanzas_are_shown_beside_the_lines(tmp_path):
    console.announce({"g": ("var_ratio_mean", "")})
    (tmp_path / "metrics.csv").write_text("generation,metric,value\n5,var_ratio_mean,0.5\n")
    h = _handler(stanzas=True)
    _job(h, 1, "block_evaluate", {"exp": "g", "regime": "replace", "seed": "0", "first": "0", "last": "5"},
         [str(tmp_path / "metrics.csv")])
    _finish(h, 1, 1, 2)
    out = h._stream.getvalue()
    assert "rule block_evaluate:" in out and "g/replace/seed0 gens 0-5: var_ratio_mean 0.5 at gen 5" in out
    assert out.count("Finished jobid: 1") == 1


def test_a_dry_run_is_left_to_snakemake():
    h = _handler(dryrun=True)
    h.emit(_record("Job stats:\njob count\n", event="run_info"))
    assert "Job stats" in h._stream.getvalue()


@pytest.mark.parametrize("seconds,text", [(0, "0s"), (59.6, "1m00s"), (125, "2m05s"), (3725, "1h02m")])
def test_clock(seconds, text):
    assert console.clock(seconds) == text
