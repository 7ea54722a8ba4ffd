"""Trains the tiny model for one step under torchrun (2 CPU processes, gloo); rank 0 saves the
LoRA weights. Used by tests/train/test_trainer.py::test_ddp_two_processes_matches_one_process."""

import sys
from pathlib import Path

import torch
import torch.distributed as dist

from cutkit.models.loading import load_tokenizer
from tests.helpers import make_trainer, two_records  # the tests package: PYTHONPATH is the repo

out = sys.argv[1]
trainer = make_trainer(
    two_records(),
    load_tokenizer(),
    str(Path(out).parent / "ddp-run"),
    per_device_train_batch_size=1,
    gradient_accumulation_steps=1,
    normalization="token",
    max_steps=1,
    ddp_backend="gloo",
)
trainer.train()
if trainer.accelerator.is_main_process:
    torch.save(
        {k: v.detach().cpu() for k, v in trainer.model.named_parameters() if v.requires_grad}, out
    )
trainer.accelerator.wait_for_everyone()
if dist.is_initialized():  # a clean shutdown: exiting with gloo's threads alive can abort a rank
    dist.destroy_process_group()
