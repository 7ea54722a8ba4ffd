"""Run directories, resuming and interruption: reusing a run directory, resuming with other
settings or data, damaged and half-written checkpoints, non-finite losses and gradients, and
seeds. Each case asserts a clear error (naming what is wrong) or the correct behaviour.

The cases share one finished tiny run (3 steps, a complete checkpoint after every step), copied
per case; the tiny model trains in a second or two."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cutkit.data.bundled import bundled_data_path
from tests.helpers import REPO, arithmetic_records, make_trainer, truncate_file

STEPS = 3


# ------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def world(tmp_path_factory, shared_tiny_checkpoint):
    """The tiny model, two data files and a finished 3-step run (checkpoints 1, 2 and 3)."""
    from cutkit.cli.train import train_main

    root = tmp_path_factory.mktemp("runs")
    model = shared_tiny_checkpoint
    data_a = Path(bundled_data_path("starter/train.jsonl"))
    data_b = root / "other.jsonl"
    data_b.write_text("".join(data_a.read_text().splitlines(keepends=True)[:24]))
    w = World(root, model, data_a, data_b)
    train_main(w.argv(root / "finished"))
    return w


class World:
    def __init__(self, root: Path, model: Path, data_a: Path, data_b: Path):
        self.root, self.model, self.data_a, self.data_b = root, model, data_a, data_b

    def argv(self, out, *extra, data=None) -> list[str]:
        return [
            "--data", str(data or self.data_a), "--model", str(self.model), "--output", str(out),
            "--max_steps", str(STEPS), "--per_device_train_batch_size", "2",
            "--gradient_accumulation_steps", "1", "--lora_r", "4", "--save_steps", "1",
            "--logging_steps", "1", "--use_cpu", "true", "--disable_tqdm", "true",
            "--report_to", "none", "--seed", "0", "--warmup_steps", "0", *extra,
        ]  # fmt: skip

    def finished_copy(self, tmp_path: Path) -> Path:
        out = tmp_path / "run"
        shutil.copytree(self.root / "finished", out, symlinks=True)
        return out


def train(argv):
    from cutkit.cli.train import train_main

    return train_main(argv)


def adapter(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(folder / "adapter_model.safetensors"))


def global_step(folder: Path) -> int:
    return json.loads((folder / "trainer_state.json").read_text())["global_step"]


# ------------------------------------------------------------------------- run-directory reuse


def test_new_run_other_data_is_refused(world, tmp_path):
    out = world.finished_copy(tmp_path)
    with pytest.raises(ValueError, match=r"(?s)already holds another run.*training data"):
        train(world.argv(out, data=world.data_b))
    assert global_step(out / "checkpoint-3") == STEPS  # untouched


def test_new_run_same_settings_is_refused(world, tmp_path):
    out = world.finished_copy(tmp_path)
    with pytest.raises(ValueError, match=r"(?s)already holds a run.*--resume last.*--overwrite"):
        train(world.argv(out))


def test_new_run_other_learning_rate_is_refused(world, tmp_path):
    out = world.finished_copy(tmp_path)
    with pytest.raises(ValueError, match=r"learning_rate: 0\.0004 -> 0\.001"):
        train(world.argv(out, "--learning_rate", "1e-3"))


def test_new_run_other_lora_rank_is_refused(world, tmp_path):
    out = world.finished_copy(tmp_path)
    with pytest.raises(ValueError, match=r"lora_r: 4 -> 8"):
        train(world.argv(out, "--lora_r", "8"))


def test_new_run_with_overwrite_replaces_the_old_run(world, tmp_path):
    out = world.finished_copy(tmp_path)
    (out / "checkpoint-7").mkdir()  # an old run's checkpoint beyond the new run's steps
    train(world.argv(out, "--overwrite", "true", data=world.data_b))
    assert not (out / "checkpoint-7").exists()
    owner = json.loads((out / "cutkit_owner.json").read_text())
    assert owner["settings"]["data"] == str(world.data_b.resolve())
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    assert [h["step"] for h in history if "loss" in h] == [1, 2, 3]  # one run, not two mixed


def test_overwrite_never_clears_a_folder_that_is_no_run(world, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("precious")
    with pytest.raises(ValueError, match="holds no cutkit run"):
        train(world.argv(out, "--overwrite", "true"))
    assert (out / "thesis.tex").read_text() == "precious"


def test_new_run_into_an_existing_empty_folder_is_accepted(tmp_path):
    from cutkit.train.rundir import check_run_directory

    (tmp_path / "empty").mkdir()
    assert (
        check_run_directory(tmp_path / "empty", {}, resume=False, overwrite=False)
        == (tmp_path / "empty").resolve()
    )


def test_the_same_directory_spelled_otherwise_is_recognised(world, tmp_path):
    world.finished_copy(tmp_path)
    spelled = tmp_path / "sub" / ".." / "." / "run"
    (tmp_path / "sub").mkdir()
    with pytest.raises(ValueError, match="already holds"):
        train(world.argv(spelled, data=world.data_b))


def test_a_symlink_to_the_run_directory_is_recognised(world, tmp_path):
    out = world.finished_copy(tmp_path)
    (tmp_path / "link").symlink_to(out, target_is_directory=True)
    with pytest.raises(ValueError, match="already holds"):
        train(world.argv(tmp_path / "link", data=world.data_b))


def test_a_run_directory_made_before_owner_records_is_refused_too(world, tmp_path):
    out = world.finished_copy(tmp_path)
    (out / "cutkit_owner.json").unlink()
    with pytest.raises(ValueError, match=r"already holds a run\b"):
        train(world.argv(out))


# ------------------------------------------------------------------------------------- resume


def test_resume_with_other_data_is_refused(world, tmp_path):
    out = world.finished_copy(tmp_path)
    with pytest.raises(ValueError, match=r"(?s)--resume.*other settings or data.*training data"):
        train(world.argv(out, "--resume", "last", data=world.data_b))


def test_resume_with_other_learning_rate_is_refused(world, tmp_path):
    out = world.finished_copy(tmp_path)
    with pytest.raises(ValueError, match=r"learning_rate: 0\.0004 -> 0\.002"):
        train(world.argv(out, "--resume", "last", "--learning_rate", "2e-3"))


def test_resume_with_other_threshold_is_refused(world, tmp_path):
    out = world.finished_copy(tmp_path)
    with pytest.raises(ValueError, match=r"threshold: 1\.1 -> 1\.3"):
        train(world.argv(out, "--resume", "last", "--threshold", "1.3"))


def test_resume_with_the_data_path_spelled_otherwise_is_accepted(world, tmp_path, monkeypatch):
    out = world.finished_copy(tmp_path)
    monkeypatch.chdir(world.data_a.parent)
    train(world.argv(out, "--resume", "last", "--logging_steps", "5", data=Path(world.data_a.name)))
    assert global_step(out) == STEPS


def test_resume_last_on_a_finished_run_takes_no_extra_step(world, tmp_path):
    out = world.finished_copy(tmp_path)
    train(world.argv(out, "--resume", "last"))
    assert global_step(out) == STEPS and not (out / f"checkpoint-{STEPS + 1}").exists()
    final = adapter(out)
    for key, value in adapter(out / f"checkpoint-{STEPS}").items():
        assert torch.equal(final[key], value), key


def test_resume_and_overwrite_together_are_refused(world, tmp_path):
    out = world.finished_copy(tmp_path)
    with pytest.raises(ValueError, match=r"--resume.*--overwrite"):
        train(world.argv(out, "--resume", "last", "--overwrite", "true"))


def test_resume_last_in_a_missing_directory_is_a_clear_error(world, tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        train(world.argv(tmp_path / "nowhere", "--resume", "last"))


def test_resume_last_with_no_checkpoint_is_a_clear_error(world, tmp_path):
    out = world.finished_copy(tmp_path)
    for folder in out.glob("checkpoint-*"):
        shutil.rmtree(folder)
    with pytest.raises(ValueError, match="no checkpoint to resume"):
        train(world.argv(out, "--resume", "last"))


def test_resume_a_missing_checkpoint_folder_is_a_clear_error(world, tmp_path):
    out = world.finished_copy(tmp_path)
    with pytest.raises(ValueError, match="checkpoint-99"):
        train(world.argv(out, "--resume", str(out / "checkpoint-99")))


def test_trainer_resume_of_a_run_finished_mid_epoch_takes_no_extra_step(tmp_path, tokenizer):
    kw = dict(max_steps=5, per_device_train_batch_size=2, gradient_accumulation_steps=1)
    kw.update(save_strategy="steps", save_steps=2, logging_steps=100)
    make_trainer(arithmetic_records(3), tokenizer, tmp_path, **kw).train()
    resumed = make_trainer(arithmetic_records(3), tokenizer, tmp_path, **kw)
    resumed.train(resume_from_checkpoint=True)
    assert resumed.state.global_step == 5 and not (tmp_path / "checkpoint-6").exists()


# -------------------------------------------------------------------------- damaged checkpoints


def _resumes_checkpoint_2(w, out, capsys, skipped_reason: str):
    train(w.argv(out, "--resume", "last"))
    printed = capsys.readouterr().out
    assert "skipped incomplete checkpoint-3" in printed and skipped_reason in printed
    assert "resuming from" in printed and printed.split("resuming from")[1].split()[0].endswith(
        "checkpoint-2"
    )
    assert global_step(out) == STEPS


def test_checkpoint_without_manifest_is_skipped(world, tmp_path, capsys):
    out = world.finished_copy(tmp_path)
    (out / "checkpoint-3" / "cutkit_checkpoint.json").unlink()
    _resumes_checkpoint_2(world, out, capsys, "did not finish")


def test_half_written_checkpoint_is_skipped(world, tmp_path, capsys):
    out = world.finished_copy(tmp_path)
    folder = out / "checkpoint-3"
    (folder / "cutkit_checkpoint.json").unlink()
    for path in sorted(folder.iterdir())[5:]:
        path.unlink()
    _resumes_checkpoint_2(world, out, capsys, "did not finish")


def test_empty_checkpoint_folder_is_skipped(world, tmp_path, capsys):
    out = world.finished_copy(tmp_path)
    shutil.rmtree(out / "checkpoint-3")
    (out / "checkpoint-3").mkdir()
    _resumes_checkpoint_2(world, out, capsys, "did not finish")


def test_checkpoint_missing_a_listed_file_is_skipped(world, tmp_path, capsys):
    out = world.finished_copy(tmp_path)
    (out / "checkpoint-3" / "scheduler.pt").unlink()
    _resumes_checkpoint_2(world, out, capsys, "scheduler.pt is missing")


def test_truncated_optimizer_is_skipped_by_resume_last(world, tmp_path, capsys):
    out = world.finished_copy(tmp_path)
    truncate_file(out / "checkpoint-3" / "optimizer.pt")
    _resumes_checkpoint_2(world, out, capsys, "optimizer.pt")


def test_truncated_optimizer_resumed_by_name_is_named(world, tmp_path):
    out = world.finished_copy(tmp_path)
    truncate_file(out / "checkpoint-3" / "optimizer.pt")
    with pytest.raises(ValueError, match=r"checkpoint-3.*optimizer\.pt"):
        train(world.argv(out, "--resume", str(out / "checkpoint-3")))


def test_same_size_damage_to_the_optimizer_is_named(world, tmp_path):
    out = world.finished_copy(tmp_path)
    path = out / "checkpoint-3" / "optimizer.pt"
    data = bytearray(path.read_bytes())
    data[-200:] = bytes(200)  # the zip directory is gone, the size is the same
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"optimizer\.pt is damaged"):
        train(world.argv(out, "--resume", str(out / "checkpoint-3")))


def test_truncated_adapter_resumed_by_name_is_named(world, tmp_path):
    out = world.finished_copy(tmp_path)
    truncate_file(out / "checkpoint-3" / "adapter_model.safetensors")
    with pytest.raises(ValueError, match=r"adapter_model\.safetensors"):
        train(world.argv(out, "--resume", str(out / "checkpoint-3")))


def test_damaged_trainer_state_is_named(world, tmp_path):
    out = world.finished_copy(tmp_path)
    (out / "checkpoint-3" / "trainer_state.json").write_text('{"global_step": ')
    with pytest.raises(ValueError, match=r"trainer_state\.json"):
        train(world.argv(out, "--resume", str(out / "checkpoint-3")))


def test_no_complete_checkpoint_lists_why(world, tmp_path):
    out = world.finished_copy(tmp_path)
    for folder in out.glob("checkpoint-*"):
        (folder / "cutkit_checkpoint.json").unlink()
    with pytest.raises(ValueError, match=r"no complete checkpoint.*checkpoint-3.*checkpoint-1"):
        train(world.argv(out, "--resume", "last"))


def test_stray_checkpoint_names_are_ignored(world, tmp_path):
    from cutkit.train.rundir import latest_complete_checkpoint

    out = world.finished_copy(tmp_path)
    (out / "checkpoint-abc").mkdir()
    (out / "checkpoint-9").write_text("a file, not a folder")
    checkpoint, skipped = latest_complete_checkpoint(out)
    assert checkpoint.name == "checkpoint-3" and skipped == []


def test_sigkill_while_saving_a_checkpoint_falls_back(world, tmp_path, capsys):
    """A real SIGKILL in the middle of writing checkpoint-3 (after its optimizer file)."""
    out = world.finished_copy(tmp_path)
    shutil.rmtree(out / "checkpoint-3")
    script = (
        "import os, signal, sys\n"
        "from cutkit.train.trainer import CUTTrainer\n"
        "save = CUTTrainer._save_optimizer_and_scheduler\n"
        "def killed(self, output_dir):\n"
        "    save(self, output_dir)\n"
        "    if self.state.global_step == 3:\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        "CUTTrainer._save_optimizer_and_scheduler = killed\n"
        "from cutkit.cli.train import train_main\n"
        "train_main(sys.argv[1:])\n"
    )
    argv = world.argv(out, "--overwrite", "true")
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", script, *argv], env=env, capture_output=True)
    assert done.returncode == -9, done.stderr.decode()[-2000:]
    assert (out / "checkpoint-3" / "optimizer.pt").exists()
    _resumes_checkpoint_2(world, out, capsys, "did not finish")


# ------------------------------------------------------------------------------- non-finite


def _poison(monkeypatch, term: str, value: float, from_call: int = 1):
    import cutkit.train.trainer as trainer_module

    real, calls = trainer_module.cut_loss, {"n": 0}

    def poisoned(*args, **kwargs):
        out = real(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] >= from_call:
            if term == "misalign":
                out.ul = out.ul + value
            else:
                key = "pos_sum" if term == "align_p" else "judged_sum"
                out.stats[key] = out.stats[key] + value
                out.mle = out.mle + value
            out.loss = out.mle + out.ul
        return out

    monkeypatch.setattr(trainer_module, "cut_loss", poisoned)


def _guarded(tmp_path, tokenizer, step: int, term: str, **overrides):
    trainer = make_trainer(
        arithmetic_records(3), tokenizer, tmp_path, max_steps=4,
        per_device_train_batch_size=2, gradient_accumulation_steps=1, save_strategy="steps",
        save_steps=1, **overrides,
    )  # fmt: skip
    with pytest.raises(FloatingPointError, match=rf"step {step}\b.*{term}") as raised:
        trainer.train()
    assert all(bool(torch.isfinite(p).all()) for p in trainer.model.parameters())
    assert not (tmp_path / f"checkpoint-{step}").exists()
    assert not (tmp_path / "adapter_model.safetensors").exists()
    return raised.value


def test_nan_misalign_term_stops_training(tmp_path, tokenizer, monkeypatch):
    _poison(monkeypatch, "misalign", math.nan)
    _guarded(tmp_path, tokenizer, 1, "misalign")


def test_inf_align_n_term_stops_training(tmp_path, tokenizer, monkeypatch):
    _poison(monkeypatch, "align_n", math.inf)
    assert _guarded(tmp_path, tokenizer, 1, "align_n").term == "align_n"


def test_nan_align_p_term_at_step_3_keeps_earlier_checkpoints(tmp_path, tokenizer, monkeypatch):
    _poison(monkeypatch, "align_p", -math.nan, from_call=3)
    _guarded(tmp_path, tokenizer, 3, "align_p")
    assert (tmp_path / "checkpoint-2" / "cutkit_checkpoint.json").exists()


def test_nan_gradient_with_finite_loss_stops_training(tmp_path, tokenizer):
    trainer = make_trainer(
        arithmetic_records(3), tokenizer, tmp_path, max_steps=2,
        per_device_train_batch_size=2, gradient_accumulation_steps=1,
    )  # fmt: skip
    name, param = next((n, p) for n, p in trainer.model.named_parameters() if p.requires_grad)
    param.register_hook(lambda grad: grad * math.nan)
    with pytest.raises(FloatingPointError, match=rf"step 1\b.*gradient.*{name}"):
        trainer.train()


def test_nan_ul_weight_during_training_stops_it(tmp_path, tokenizer):
    trainer = make_trainer(
        arithmetic_records(3), tokenizer, tmp_path, max_steps=3,
        per_device_train_batch_size=6, gradient_accumulation_steps=1,
    )  # fmt: skip
    trainer.args.ul_weight = math.nan  # past the validation of the settings
    with pytest.raises(
        (ValueError, FloatingPointError), match=r"ul_weight.*nan|step 1\b.*(misalign|gradient)"
    ):
        trainer.train()
    assert not (tmp_path / "checkpoint-1").exists()


def test_overflowing_weights_stop_training(tmp_path, tokenizer):
    trainer = make_trainer(
        arithmetic_records(3), tokenizer, tmp_path, max_steps=3,
        per_device_train_batch_size=6, gradient_accumulation_steps=1,
    )  # fmt: skip
    with torch.no_grad():
        for name, param in trainer.model.named_parameters():
            if "lora_B" in name:
                param.fill_(3e38)
    with pytest.raises(
        FloatingPointError, match=r"step 1\b.*(align_p|align_n|misalign|likelihood|gradient)"
    ):
        trainer.train()
    assert all(bool(torch.isfinite(p).all()) for p in trainer.model.parameters())


def test_save_run_refuses_non_finite_weights(tmp_path, tokenizer):
    trainer = make_trainer(arithmetic_records(1), tokenizer, tmp_path, max_steps=1)
    with torch.no_grad():
        next(p for p in trainer.model.parameters() if p.requires_grad).fill_(math.nan)
    with pytest.raises(FloatingPointError, match="NaN or inf"):
        trainer.save_run()
    assert not (tmp_path / "adapter_model.safetensors").exists()


def test_cli_nan_ul_weight_saves_no_adapter(world, tmp_path):
    out = tmp_path / "run"
    with pytest.raises((ValueError, FloatingPointError), match=r"ul_weight|misalign|gradient"):
        train(world.argv(out, "--ul_weight", "nan"))
    assert not (out / "adapter_model.safetensors").exists()


# -------------------------------------------------------------------------------------- seeds


def test_same_seed_gives_bit_identical_adapters(world, tmp_path):
    argv = ["--max_steps", "2", "--save_strategy", "no"]
    train([*world.argv(tmp_path / "a"), *argv])
    train([*world.argv(tmp_path / "b"), *argv])
    a, b = adapter(tmp_path / "a"), adapter(tmp_path / "b")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_other_seed_gives_another_lora_initialisation(world, tmp_path):
    argv = ["--max_steps", "1", "--save_strategy", "no", "--learning_rate", "1e-12"]
    train([*world.argv(tmp_path / "a"), *argv])
    train([*world.argv(tmp_path / "b"), *argv, "--seed", "1"])
    a, b = adapter(tmp_path / "a"), adapter(tmp_path / "b")
    assert any(not torch.equal(a[k], b[k]) for k in a)
