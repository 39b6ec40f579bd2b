"""A real single-node SLURM cluster on this machine runs a tiny study through `--profile profiles/slurm`.

The fixture installs the Debian packages slurm-wlm and munge when they are missing (CI runs as root with
apt), writes a minimal slurm.conf for this host, starts munged (unless one already answers), slurmctld and
slurmd, and stops every daemon it started (putting back any /etc/slurm/slurm.conf it replaced).  Slurm 22.05 here runs no accounting daemon, so the test passes
`--slurm-status-command squeue --slurm-no-account` itself; those flags stay out of the user profile.
"""
import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest

from conftest import REPO, run_snakemake, snakemake_log

pytestmark = [pytest.mark.slurm, pytest.mark.e2e]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def _munge_ok() -> bool:
    if not shutil.which("munge"):
        return False
    enc = _run(["munge", "-n"])
    return enc.returncode == 0 and _run(["unmunge"], input=enc.stdout).returncode == 0


def _install_packages():
    if shutil.which("slurmctld") and shutil.which("slurmd") and shutil.which("munged"):
        return
    if not shutil.which("apt-get"):
        pytest.fail("slurm-wlm and munge are missing and there is no apt-get to install them")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    proc = _run(["apt-get", "install", "-y", "--no-install-recommends", "slurm-wlm", "munge"], env=env)
    if proc.returncode != 0:
        proc = _run(["bash", "-c", "apt-get update -q && apt-get install -y --no-install-recommends slurm-wlm munge"],
                    env=env)
    if proc.returncode != 0:
        pytest.fail(f"could not install slurm-wlm and munge with apt-get:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("the SLURM test needs root: it installs slurm-wlm and munge and starts their daemons")
    pytest.importorskip("snakemake_executor_plugin_slurm", reason="pip install -e '.[test]' brings the SLURM plugin")
    _install_packages()
    root = tmp_path_factory.mktemp("slurm")
    for sub in ("state", "spool", "log", "run"):
        (root / sub).mkdir()
    started_munge = None
    if not _munge_ok():
        key = Path("/etc/munge/munge.key")
        if not key.is_file():
            key.write_bytes(os.urandom(128))
            shutil.chown(key, "munge", "munge")
            key.chmod(0o400)
        Path("/run/munge").mkdir(parents=True, exist_ok=True)
        shutil.chown("/run/munge", "munge", "munge")
        proc = _run(["munged", "--force"])
        if proc.returncode != 0 or not _munge_ok():
            pytest.fail(f"munged did not start: {proc.stderr}")
        started_munge = Path("/run/munge/munged.pid")
    host = socket.gethostname()
    mem = int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20 * 0.8)
    conf = root / "slurm.conf"
    conf.write_text(f"""ClusterName=ouroboros-test
SlurmctldHost={host}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/run/slurmctld.pid
SlurmdPidFile={root}/run/slurmd.pid
SlurmctldLogFile={root}/log/slurmctld.log
SlurmdLogFile={root}/log/slurmd.log
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
MpiDefault=none
NodeName={host} NodeAddr=127.0.0.1 CPUs={os.cpu_count()} RealMemory={mem} State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
""")
    # Job steps find the configuration at the standard path only (the jobstep plugin drops SLURM_CONF
    # before its nested srun), so it is put there for the test, and what was there is put back.
    system_conf = Path("/etc/slurm/slurm.conf")
    saved = system_conf.read_bytes() if system_conf.is_file() else None
    system_conf.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(conf, system_conf)
    old_conf = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = str(conf)
    try:
        for daemon in ("slurmctld", "slurmd"):
            proc = _run([daemon, "-f", str(conf)])
            if proc.returncode != 0:
                pytest.fail(f"{daemon} did not start: {proc.stderr}")
        deadline = time.monotonic() + 60
        state = ""
        while time.monotonic() < deadline:
            state = _run(["sinfo", "-h", "-o", "%T"]).stdout.strip()
            if state == "idle":
                break
            time.sleep(1)
        else:
            log = (root / "log" / "slurmctld.log").read_text()[-2000:] if (root / "log" / "slurmctld.log").is_file() else ""
            pytest.fail(f"the SLURM node did not come up (state {state!r}):\n{log}")
        yield {"conf": conf, "root": root}
    finally:
        _run(["scontrol", "shutdown"])
        for pid_file in (root / "run" / "slurmctld.pid", root / "run" / "slurmd.pid"):
            _stop(pid_file)
        if started_munge is not None:
            _stop(started_munge)
        if saved is None:
            system_conf.unlink(missing_ok=True)
        else:
            system_conf.write_bytes(saved)
        if old_conf is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = old_conf


def _stop(pid_file: Path, timeout: float = 20.0):
    if not pid_file.is_file():
        return
    try:
        pid = int(pid_file.read_text().strip())
    except ValueError:
        return
    deadline = time.monotonic() + timeout
    sig = 15
    while time.monotonic() < deadline:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        time.sleep(0.5)
    os.kill(pid, 9)


TINY = {
    "study": "slurm-tiny", "seeds": [0], "generations": 20, "tracking": {"enabled": False},
    "experiments": [
        {"name": "gaussian", "target": "gaussian", "n": 50, "replicates": 20, "block": 10,
         "regimes": ["replace", "accumulate", {"kind": "mix", "rho": 0.2}], "params": {"d": 2}},
        {"name": "gauss-pergen", "target": "gaussian", "n": 30, "replicates": 5, "block": 1, "generations": 2,
         "regimes": ["replace"], "params": {"d": 1}},
        {"name": "gmm", "target": "gmm", "n": 200, "replicates": 2, "generations": 6, "block": 3,
         "regimes": ["replace"], "params": {"components": 2, "eval_size": 500}},
    ],
}


def test_tiny_study_through_the_slurm_profile_matches_a_local_run(tmp_path, slurm_cluster):
    local = tmp_path / "local"
    run_snakemake(local, TINY, "--cores", "2")
    remote = tmp_path / "slurm"
    proc = run_snakemake(remote, TINY, "--profile", str(REPO / "profiles" / "slurm"), "--jobs", "4",
                         "--slurm-status-command", "squeue", "--slurm-no-account",
                         "--slurm-init-seconds-before-status-checks", "1", "--latency-wait", "5",
                         timeout=1200)  # a job SLURM cannot place would otherwise wait for ever
    out = proc.stdout + proc.stderr + snakemake_log(remote)  # the job stanzas are in Snakemake's log file
    submitted = re.findall(r"has been submitted with SLURM jobid (\d+)", out)
    assert len(submitted) >= 5, f"expected SLURM submissions, got {submitted}:\n{out[-3000:]}"
    assert "Group job small" in out  # the short block jobs went as one grouped submission
    a = pd.read_csv(local / "results/slurm-tiny/metrics.csv")
    b = pd.read_csv(remote / "results/slurm-tiny/metrics.csv")
    pd.testing.assert_frame_equal(a, b)
    assert (remote / "results/slurm-tiny/plots/gaussian/std_mean.png").is_file()
