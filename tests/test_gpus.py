"""GPU placement and device choice, on a machine without GPUs: the machine is mocked only where it is asked
(``ouroboros.gpus.query_gpu_ids`` and ``ouroboros.torchdev.cuda_available``)."""
import multiprocessing as mp
import os

import pytest

from ouroboros import gpus, torchdev
from ouroboros.targets import make_target


@pytest.fixture
def four_gpus(monkeypatch, tmp_path):
    monkeypatch.setattr(gpus, "query_gpu_ids", lambda: ["0", "1", "2", "3"])
    monkeypatch.setenv("OUROBOROS_GPU_LOCKS", str(tmp_path / "locks"))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)


def test_slots_are_exported_and_released(four_gpus):
    with gpus.gpu_slots(2) as ids:
        assert ids == ["0", "1"] and os.environ["CUDA_VISIBLE_DEVICES"] == "0,1"
    assert "CUDA_VISIBLE_DEVICES" not in os.environ
    with gpus.gpu_slots(4) as ids:  # every slot was released
        assert ids == ["0", "1", "2", "3"]


def _hold(queue, release):
    with gpus.gpu_slots(1) as ids:
        queue.put((ids[0], os.environ["CUDA_VISIBLE_DEVICES"]))
        release.wait(30)


def test_separate_processes_share_out_the_gpus(four_gpus):
    ctx = mp.get_context("fork")
    queue, release = ctx.Queue(), ctx.Event()
    procs = [ctx.Process(target=_hold, args=(queue, release)) for _ in range(4)]
    for p in procs:
        p.start()
    got = [queue.get(timeout=30) for _ in procs]
    release.set()
    for p in procs:
        p.join(30)
    assert sorted(g for g, _ in got) == ["0", "1", "2", "3"]
    assert all(g == env for g, env in got)


def test_a_job_takes_the_gpus_others_leave(four_gpus):
    ctx = mp.get_context("fork")
    queue, release = ctx.Queue(), ctx.Event()
    p = ctx.Process(target=_hold, args=(queue, release))
    p.start()
    held, _ = queue.get(timeout=30)
    try:
        with gpus.gpu_slots(3) as ids:
            assert sorted(ids + [held]) == ["0", "1", "2", "3"]
    finally:
        release.set()
        p.join(30)


def test_a_killed_job_frees_its_gpu(four_gpus):
    ctx = mp.get_context("fork")
    queue, release = ctx.Queue(), ctx.Event()
    p = ctx.Process(target=_hold, args=(queue, release))
    p.start()
    held, _ = queue.get(timeout=30)
    p.kill()
    p.join(30)
    with gpus.gpu_slots(4) as ids:
        assert held in ids


def test_waits_for_a_slot_then_gives_up(four_gpus):
    with gpus.gpu_slots(4):
        with pytest.raises(gpus.GPUError, match="no free GPU slot"):
            with gpus.gpu_slots(1, wait_s=0.3, poll_s=0.05):
                pass


def test_scheduler_allocation_is_respected(monkeypatch, tmp_path):
    monkeypatch.setattr(gpus, "query_gpu_ids", lambda: pytest.fail("CUDA_VISIBLE_DEVICES must win over nvidia-smi"))
    monkeypatch.setenv("OUROBOROS_GPU_LOCKS", str(tmp_path / "locks"))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,5")
    with gpus.gpu_slots(1) as ids:
        assert ids == ["2"] and os.environ["CUDA_VISIBLE_DEVICES"] == "2"
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "2,5"
    with pytest.raises(gpus.GPUError, match="needs 3 GPU.*shows 2"):
        with gpus.gpu_slots(3):
            pass
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert gpus.visible_gpus() == []


def test_no_gpu_asked_changes_nothing(monkeypatch):
    monkeypatch.setattr(gpus, "query_gpu_ids", lambda: pytest.fail("no query without a GPU request"))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    with gpus.gpu_slots(0) as ids:
        assert ids == [] and "CUDA_VISIBLE_DEVICES" not in os.environ


def test_nvidia_smi_listing_is_parsed(monkeypatch):
    class Done:
        stdout = "GPU 0: NVIDIA H100 (UUID: GPU-a)\nGPU 1: NVIDIA H100 (UUID: GPU-b)\n"

    monkeypatch.setattr(gpus.shutil, "which", lambda name: "/usr/bin/nvidia-smi")
    monkeypatch.setattr(gpus.subprocess, "run", lambda *a, **k: Done())
    assert gpus.query_gpu_ids() == ["0", "1"]
    monkeypatch.setattr(gpus.shutil, "which", lambda name: None)
    assert gpus.query_gpu_ids() == []


@pytest.mark.parametrize("cuda", [True, False])
def test_device_choice(monkeypatch, cuda):
    monkeypatch.setattr(torchdev, "cuda_available", lambda: cuda)
    assert torchdev.resolve_device("auto") == ("cuda" if cuda else "cpu")
    assert torchdev.resolve_device("cpu") == "cpu"
    if cuda:
        assert torchdev.resolve_device("cuda") == "cuda"
    else:
        with pytest.raises(RuntimeError, match="no CUDA device"):
            torchdev.resolve_device("cuda")
    for name in ("vae", "lm"):
        assert make_target(name, {"device": "auto"}).gpus() == (1 if cuda else 0)
        assert make_target(name, {"device": "cpu"}).gpus() == 0
        assert make_target(name, {"device": "cuda"}).gpus() == 1  # a login node without GPUs still asks for one
    assert make_target("gaussian").gpus() == 0


def test_slurm_jobs_on_one_node_do_not_share_slots(monkeypatch, tmp_path):
    monkeypatch.setenv("OUROBOROS_GPU_LOCKS", str(tmp_path / "locks"))
    a = {"CUDA_VISIBLE_DEVICES": "0", "SLURM_JOB_ID": "11", "OUROBOROS_GPU_LOCKS": str(tmp_path / "locks")}
    b = {"CUDA_VISIBLE_DEVICES": "0", "SLURM_JOB_ID": "12", "OUROBOROS_GPU_LOCKS": str(tmp_path / "locks")}
    assert gpus.slot_dir(a) != gpus.slot_dir(b)
    with gpus.gpu_slots(1, environ=a) as x, gpus.gpu_slots(1, environ=b, wait_s=0.2) as y:
        assert x == y == ["0"]  # each SLURM job owns its (renumbered) GPU 0
