"""The four stages of ``run.py``, in order of priority. Each takes the runner (commands,
caps, paths, the resolved model) and returns its record: ``status`` ("ok", "failed", "partial",
"skipped"), the commands it ran and what they measured. A stage runs its work as subprocesses, so
a stage cap can stop it, and an error in one stage never stops the next (``run.py`` catches it)."""

from __future__ import annotations

import importlib.util
import json
import math
import shutil
import statistics
from pathlib import Path

from cutkit.models.registry import DEFAULT_MODEL

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
CONFIGS = REPO / "configs" / "accelerate"
TRAIN_DATA = REPO / "data" / "starter" / "train.jsonl"

# name -> (accelerate config, Python package it needs beyond accelerate)
SCALE_OUT = {
    "ddp": ("ddp.yaml", None),
    "fsdp": ("fsdp.yaml", None),
    "deepspeed-zero2": ("deepspeed-zero2.yaml", "deepspeed"),
    "deepspeed-zero3": ("deepspeed-zero3.yaml", "deepspeed"),
}
DRY_RUN_CONFIG = ("ddp-cpu", "ddp-cpu.yaml")  # what the CPU dry run launches instead of ddp.yaml

ONPOLICY_ARMS = ("cut", "cut-ignore-noN", "sft", "kto")  # the decisive arms


def missing(package: str) -> str | None:
    """ "not installed: pip install X" for a package that cannot be imported, else None."""
    if importlib.util.find_spec(package) is None:
        return f"not installed: pip install {package}"
    return None


# ------------------------------------------------------------------------ 1: scale-out configs


def train_argv(plan, model: str, output: Path) -> list[str]:
    """``cutkit train`` options shared by every config: a few steps on the starter set, LoRA
    without dropout (so the runs differ only in how they are launched), a log per step."""
    argv = ["train", "--data", str(TRAIN_DATA), "--model", model,
            "--output", str(output), "--max_steps", str(plan.train_steps),
            "--per_device_train_batch_size", str(plan.train_batch),
            "--gradient_accumulation_steps", "1", "--lora_dropout", "0", "--max_length", "512",
            "--logging_steps", "1", "--save_strategy", "no", "--seed", "0", "--data_seed", "0",
            "--report_to", "none", "--disable_tqdm", "true"]  # fmt: skip
    return argv + (["--use_cpu", "true"] if plan.dry_run else ["--bf16", "true"])


def launch_command(runner, config: str | None, probe: Path, output: Path, planned=False):
    """The plain single process (``config`` None) or ``accelerate launch`` with one process;
    ``planned``: the command of the GPU plan on the default model (what the dry run records for
    the configs it cannot run)."""
    plan, model = (
        (runner.gpu_plan, DEFAULT_MODEL) if planned else (runner.plan, runner.model["name"])
    )
    script = [str(HERE / "train_probe.py"), str(probe), *train_argv(plan, model, output)]
    if config is None:
        return [runner.python, *script]
    launch = [runner.python, "-m", "accelerate.commands.launch", "--config_file",
              str(CONFIGS / config), "--num_processes", "1", "--main_process_port",
              str(runner.free_port())]  # fmt: skip
    return launch + script


def parse_config(name: str) -> dict:
    """The accelerate config as accelerate reads it (an unknown key or value raises)."""
    from accelerate.commands.config.config_args import load_config_from_file

    config = load_config_from_file(str(CONFIGS / name))
    return {
        "distributed_type": str(config.distributed_type),
        "mixed_precision": str(config.mixed_precision),
        "num_processes": config.num_processes,
    }


def loss_curve(probe: dict) -> list[float]:
    return [h["loss"] for h in probe.get("log_history", []) if "loss" in h and "step" in h]


def lora_tensors(output: Path) -> dict | None:
    path = output / "adapter_model.safetensors"
    if not path.exists():
        return None
    from safetensors.torch import load_file

    return {k: v.float() for k, v in load_file(str(path)).items()}


def agreement(run: dict, reference: dict) -> dict:
    """How far a config's run is from the plain one: the largest relative difference of the
    per-step losses, and the LoRA B matrices' relative L2 distance (B starts at zero, so it is
    what training wrote; A starts at the same random draw in every run), plus the largest
    absolute difference of any LoRA tensor."""
    a, b = loss_curve(run["probe"]), loss_curve(reference["probe"])
    out: dict = {"loss_steps": len(a)}
    if a and len(a) == len(b):
        out["loss_max_rel_diff"] = max(
            abs(x - y) / max(abs(y), 1e-12) for x, y in zip(a, b, strict=True)
        )
    weights, ref = lora_tensors(run["output"]), lora_tensors(reference["output"])
    if weights is not None and ref is not None and weights.keys() == ref.keys():
        num = sum(float((weights[k] - ref[k]).pow(2).sum()) for k in ref if "lora_B" in k)
        den = sum(float(ref[k].pow(2).sum()) for k in ref if "lora_B" in k)
        out["lora_b_rel_l2"] = math.sqrt(num) / max(math.sqrt(den), 1e-30)
        out["lora_max_abs_diff"] = max(float((weights[k] - ref[k]).abs().max()) for k in ref)
    elif weights is None:
        out["lora_note"] = "no adapter_model.safetensors saved: compared by the loss curve only"
    return out


def summarize_probe(probe: dict) -> dict:
    steps = probe.get("step_s") or []
    return {
        "steps": len(steps),
        "median_step_s": round(statistics.median(steps[1:] or steps), 4) if steps else None,
        "first_step_s": steps[0] if steps else None,
        "peak_memory_allocated_gib": probe.get("peak_memory_allocated_gib"),
        "peak_memory_reserved_gib": probe.get("peak_memory_reserved_gib"),
        "peak_rss_gib": probe.get("peak_rss_gib"),
        "setup": probe.get("setup"),
        "losses": [round(x, 5) for x in loss_curve(probe)],
    }


def stage_configs(runner, cap: float) -> dict:
    plan, work = runner.plan, runner.work / "configs"
    shutil.rmtree(work, ignore_errors=True)
    tol = plan.tolerance
    record: dict = {"tolerance": tol, "runs": {}, "parsed": {}}
    for name in [DRY_RUN_CONFIG[1], *(c for c, _ in SCALE_OUT.values())]:
        try:
            record["parsed"][name] = parse_config(name)
        except Exception as error:  # a config accelerate cannot read is a finding, not a crash
            record["parsed"][name] = {"error": f"{type(error).__name__}: {error}"}
    todo: list[tuple[str, str | None, str | None]] = [("plain", None, None)]
    if plan.dry_run:
        todo.append((DRY_RUN_CONFIG[0], DRY_RUN_CONFIG[1], None))
        planned = {n: f"planned only: needs CUDA GPUs ({c})" for n, (c, _) in SCALE_OUT.items()}
    else:
        planned = {}
    for name, (config, package) in SCALE_OUT.items():
        reason = "; ".join(filter(None, [planned.get(name), package and missing(package)]))
        if reason:
            probe, output = work / f"{name}.json", work / name
            command = launch_command(runner, config, probe, output, planned=bool(planned))
            record["runs"][name] = {"status": "not run", "reason": reason, "config": config,
                                    "command": runner.show(command)}  # fmt: skip
        else:
            todo.append((name, config, package))
    deadline = runner.clock() + cap
    runs = {}
    for name, config, _ in todo:
        left = deadline - runner.clock()
        if left < 10:
            record["runs"][name] = {"status": "not run", "reason": "stage cap reached"}
            continue
        probe, output = work / f"{name}.json", work / name
        command = launch_command(runner, config, probe, output)
        result = runner.run(command, timeout=min(plan.config_run_cap, left), label=name)
        entry = {"status": "ran" if result["rc"] == 0 else "failed", "config": config, **result}
        if probe.exists():
            runs[name] = {"probe": json.loads(probe.read_text()), "output": output}
            entry |= summarize_probe(runs[name]["probe"])
        elif result["rc"] == 0:
            entry["status"] = "failed"
            entry["reason"] = "the probe wrote nothing"
        record["runs"][name] = entry
    reference = runs.get("plain")
    for name, run in runs.items():
        if name == "plain" or reference is None:
            continue
        figures = agreement(run, reference)
        agree = figures.get("loss_max_rel_diff", math.inf) <= tol["loss_max_rel_diff"] and (
            figures.get("lora_b_rel_l2", 0.0) <= tol["lora_b_rel_l2"]
        )
        record["runs"][name] |= figures | {"agrees": agree}
    order = ["plain", DRY_RUN_CONFIG[0], *SCALE_OUT]
    record["runs"] = {n: record["runs"][n] for n in order if n in record["runs"]}
    ran = [r for n, r in record["runs"].items() if n != "plain" and r["status"] != "not run"]
    good = all(r["status"] == "ran" and r.get("agrees") for r in ran)
    plain_ok = record["runs"].get("plain", {}).get("status") == "ran"
    record["status"] = "ok" if ran and good and plain_ok else "failed"
    return record


# ------------------------------------------------------------------------ 2: notebook 03


def stage_notebook(runner, cap: float) -> dict:
    plan, work = runner.plan, runner.work / "notebook"
    for package in ("nbclient", "ipykernel"):
        if missing(package):
            return {"status": "skipped", "reason": missing(package)}
    shutil.rmtree(work, ignore_errors=True)
    (work / "notebooks").mkdir(parents=True)
    (work / "benchmarks").symlink_to(REPO / "benchmarks")  # as the parameter tests lay it out
    notebook = work / "notebooks" / "03_cut_training_gpu.ipynb"
    shutil.copy(REPO / "notebooks" / notebook.name, notebook)
    parameters = {"SCALE": plan.notebook_scale, "MODEL": runner.model["name"]}
    executed, probe = runner.out / "notebook03.ipynb", work / "probe.json"
    command = [runner.python, str(HERE / "notebook_run.py"), str(notebook), str(executed),
               str(probe), *(f"{k}={json.dumps(v)}" for k, v in parameters.items())]  # fmt: skip
    result = runner.run(command, timeout=cap, label="notebook 03", cwd=work / "notebooks")
    record = {"parameters": parameters, **result}
    if probe.exists():
        executed_run = json.loads(probe.read_text())
        executed_run["notebook_wall_s"] = executed_run.pop("wall_s")
        record |= executed_run
    record["status"] = "ok" if result["rc"] == 0 and record.get("ok") else "failed"
    return record


# ------------------------------------------------------------------------ 3: step benchmark


def step_rows(rows: list[dict]) -> list[dict]:
    """Packed against padded (cutkit) and both against the released code, per model and
    micro-batch: tokens/s ratios and MFU."""
    out = []
    for key in dict.fromkeys((r["model"], r["micro_batch"]) for r in rows):
        same = {r["variant"]: r for r in rows if (r["model"], r["micro_batch"]) == key}
        packed, padded, released = (same.get(v) for v in ("cutkit-packed", "cutkit", "released"))

        def speed(a, b):
            ok = a and b and "error" not in a and "error" not in b
            return round(a["tokens_per_s"] / b["tokens_per_s"], 3) if ok else None

        out.append(
            {
                "model": key[0],
                "micro_batch": key[1],
                "packed_vs_padded": speed(packed, padded),
                "packed_vs_released": speed(packed, released),
                "padded_vs_released": speed(padded, released),
                "mfu_packed": packed and packed.get("mfu"),
                "mfu_padded": padded and padded.get("mfu"),
                "errors": {v: r["error"] for v, r in same.items() if "error" in r},
            }
        )
    return out


def stage_step(runner, cap: float) -> dict:
    plan = runner.plan
    script = str(REPO / "benchmarks" / "step" / "bench_step.py")
    command = [runner.python, script, *plan.step_args,
               "--tokenizer", runner.model["tokenizer"], "--out", str(runner.out / "step")]  # fmt: skip
    result = runner.run(command, timeout=cap, label="step benchmark")
    record = dict(result)
    path = runner.out / "step.json"
    rows = json.loads(path.read_text())["results"] if path.exists() else []
    record["rows"] = rows
    record["packed_vs_padded"] = step_rows(rows)
    complete = rows and not any("error" in r for r in rows)
    record["status"] = "ok" if result["rc"] == 0 and complete else ("partial" if rows else "failed")
    return record


# ------------------------------------------------------------------------ 4: on-policy arms


def onpolicy_progress(folder: Path) -> dict:
    """Per arm: the held-out satisfaction and training seconds of each finished seed, and the
    validation runs (learning-rate choice) done."""
    arms = {}
    for arm_dir in sorted((folder / "arms").glob("*")):
        seeds = []
        for path in sorted(arm_dir.glob("heldout-seed*.json")):
            run = json.loads(path.read_text())
            rows = run.get("rows", [])
            rate = sum(r["satisfied"] for r in rows) / len(rows) if rows else None
            seeds.append({"seed": run["seed"], "lr": run["lr"], "satisfaction": rate,
                          "train_seconds": run.get("train_seconds"), "steps": run.get("steps")})  # fmt: skip
        arms[arm_dir.name] = {
            "heldout_seeds": seeds,
            "validation_runs": len(list(arm_dir.glob("val-lr*.json"))),
        }
    return arms


def stage_onpolicy(runner, cap: float) -> dict:
    plan = runner.plan
    if not plan.dry_run and not runner.model["real_default"]:
        return {"status": "skipped", "reason": "needs the default model's real weights "
                "(its answers are the data); this machine has " + runner.model["weights"]}  # fmt: skip
    if "kto" in plan.onpolicy_arms and missing("trl"):
        return {"status": "skipped", "reason": missing("trl") + " (KTO)"}
    folder, results = runner.work / "onpolicy", runner.work / "onpolicy-results"
    script = str(REPO / "benchmarks" / "onpolicy" / "onpolicy_experiment.py")
    report_reserve = min(60.0, cap / 4)
    worker = [runner.python, script, "worker", "0", "1", "--preset", plan.onpolicy_preset,
              "--arms", ",".join(plan.onpolicy_arms), "--out", str(folder)]  # fmt: skip
    result = runner.run(worker, timeout=cap - report_reserve, label="on-policy worker")
    record = {"preset": plan.onpolicy_preset, "arms": list(plan.onpolicy_arms), "worker": result}
    report = [runner.python, script, "report", "--out", str(folder), "--results", str(results)]
    if (folder / "prepared.json").exists():
        record["report"] = runner.run(report, timeout=report_reserve, label="on-policy report")
        if (results / "table.md").exists():
            shutil.copy(results / "table.md", runner.out / "onpolicy.md")
        prepared = json.loads((folder / "prepared.json").read_text())
        record["gate"] = prepared.get("gate")
        record["prepare_seconds"] = prepared.get("seconds")
    record["progress"] = onpolicy_progress(folder)
    done = all(
        len(record["progress"].get(arm, {}).get("heldout_seeds", [])) == plan.onpolicy_seeds
        for arm in plan.onpolicy_arms
    )
    if result["rc"] == 0 and done:
        record["status"] = "ok"
    else:
        record["status"] = "partial" if record["progress"] else "failed"
    return record


STAGES = [
    ("configs", "1 · scale-out configs on one GPU", stage_configs),
    ("notebook", "2 · notebook 03 at full scale", stage_notebook),
    ("step", "3 · step benchmark, packed vs padded", stage_step),
    ("onpolicy", "4 · on-policy decisive arms", stage_onpolicy),
]
