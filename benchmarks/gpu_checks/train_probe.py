"""``cutkit train ARGS`` with a stopwatch: what ``run.py`` launches for each scale-out config.

    python benchmarks/gpu_checks/train_probe.py PROBE.json train --data ... --output ...
    accelerate launch --config_file CONFIG benchmarks/gpu_checks/train_probe.py PROBE.json train ...

It runs exactly the command ``cutkit train ARGS`` (``cutkit.cli.main``), with one callback added to
the trainer that command builds: it times each optimizer step (CUDA synchronised at both ends) and
notes the distributed setup the trainer saw. Rank 0 then writes PROBE.json: the exit status, the
step times, peak memory (``torch.cuda.max_memory_allocated`` / reserved over the whole process, or
peak RSS on CPU), the loss history (``trainer.state.log_history``) and that setup. The callback is
added by wrapping ``CUTTrainer.__init__`` in this process only: a probe, not a cutkit feature.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path


def _sync() -> None:
    import torch

    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def _peak_rss_bytes() -> int | None:
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return None
    match = re.search(r"VmHWM:\s+(\d+)", text)
    return int(match.group(1)) * 1024 if match else None


def main(argv: list[str]) -> int:
    import torch
    from transformers import TrainerCallback

    import cutkit.train.trainer as trainer_module
    from cutkit.cli import main as cutkit_main

    probe_path, command = Path(argv[0]), argv[1:]
    seen: dict = {"step_s": [], "trainer": None, "setup": {}}

    class StepTimer(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            trainer = seen["trainer"]
            dist = torch.distributed
            seen["setup"] = {
                "distributed_type": str(trainer.accelerator.distributed_type),
                "mixed_precision": str(trainer.accelerator.mixed_precision),
                "world_size": dist.get_world_size() if dist.is_initialized() else 1,
                "process_group": dist.is_initialized(),
                "deepspeed": bool(getattr(trainer, "is_deepspeed_enabled", False)),
                "fsdp": bool(getattr(trainer, "is_fsdp_enabled", False)),
                "device": str(args.device),
                "bf16": bool(args.bf16),
            }

        def on_step_begin(self, args, state, control, **kwargs):
            _sync()
            seen["start"] = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            _sync()
            seen["step_s"].append(time.perf_counter() - seen["start"])

        def on_train_end(self, args, state, control, **kwargs):
            trainer = seen["trainer"]
            seen["setup"]["wrapped_model"] = type(trainer.model_wrapped).__name__

    original_init = trainer_module.CUTTrainer.__init__

    def init_with_timer(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        seen["trainer"] = self
        self.add_callback(StepTimer())

    trainer_module.CUTTrainer.__init__ = init_with_timer
    start = time.perf_counter()
    status = cutkit_main(command)
    wall = time.perf_counter() - start
    if int(os.environ.get("RANK", "0")) == 0:
        cuda = torch.cuda.is_available() and torch.cuda.is_initialized()
        trainer = seen["trainer"]
        probe = {
            "status": status,
            "wall_s": round(wall, 2),
            "step_s": [round(s, 5) for s in seen["step_s"]],
            "peak_memory_allocated_gib": (
                round(torch.cuda.max_memory_allocated() / 2**30, 3) if cuda else None
            ),
            "peak_memory_reserved_gib": (
                round(torch.cuda.max_memory_reserved() / 2**30, 3) if cuda else None
            ),
            "peak_rss_gib": round((_peak_rss_bytes() or 0) / 2**30, 3),
            "log_history": trainer.state.log_history if trainer is not None else [],
            "setup": seen["setup"],
        }
        probe_path.parent.mkdir(parents=True, exist_ok=True)
        probe_path.write_text(json.dumps(probe, indent=1, default=str))
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
