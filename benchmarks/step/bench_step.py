"""One training step, four ways, same data and model: cutkit (padded and packed), the released code, TRL.

For each configuration (model shape, LoRA or full fine-tuning, micro-batch size) every variant runs
the same sequence of micro-batches of CUT examples whose prompt / judgment / response lengths and
share of negatives are drawn from the official CUT sample
(``benchmarks/step/data/official_lengths.json``, the paper's recipe: alpaca template, cutoff 2048,
Align-P 0.25), token ids random:

- ``cutkit``: ``CUTTrainer.training_step`` on ``CUTCollator`` batches (no dummy rows, chunked
  label log-probs over scored positions only);
- ``cutkit-packed``: the same with ``CUTConfig(packing=True)`` (one row, no padding, per-context
  attention: ``cutkit_varlen``);
- ``released``: ``benchmarks/step/released_code_step.py``, a faithful re-implementation of the
  released code (doubled batch with all-pad dummy rows, full (2R, T, V) logits, fp32 softmax);
- ``trl``: ``trl.SFTTrainer.training_step`` over the same context rows (prompt = judged or plain
  prompt, completion = the response: the same scored tokens), its default padded collator.

A step is one micro-batch's forward + backward (the optimizer update is the same for all variants
and is left out). Reported per variant: step time (median), tokens/s (real, non-pad tokens of all
context rows), step time per 1k scored (response) tokens, peak memory (CUDA: max allocated over the
timed steps, in total and above the memory held before the step), and MFU (model FLOPs of the real
tokens, 6N per token for full fine-tuning, 4N with LoRA, plus causal attention, over the GPU's
dense bf16 peak).

    python benchmarks/step/bench_step.py --preset cpu               # default model, CPU (fp32, LoRA)
    python benchmarks/step/bench_step.py --preset h100 --out DIR/step_h100   # GPU: three shapes, bf16
    python benchmarks/step/bench_step.py --model tiny --micro-batch 2 --steps 2   # smoke run
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import re
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch
from released_code_step import released_collate, released_step

PROFILE = Path(__file__).parent / "data" / "official_lengths.json"
VARIANTS = ("released", "trl", "cutkit", "cutkit-packed")

# Llama-style shapes (random weights): Llama-3.2-1B and Llama-3.1-8B, and the default model's own.
SHAPES: dict[str, dict] = {
    "smollm2-135m": dict(
        hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
        num_key_value_heads=3, vocab_size=49152, tie_word_embeddings=True, rope_theta=100000.0,
    ),
    "llama-1b": dict(
        hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
        num_key_value_heads=8, head_dim=64, vocab_size=128256, tie_word_embeddings=True,
        rope_theta=500000.0,
    ),
    "llama-8b": dict(
        hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
        num_key_value_heads=8, head_dim=128, vocab_size=128256, tie_word_embeddings=False,
        rope_theta=500000.0,
    ),
    "tiny": dict(
        hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, vocab_size=49152, tie_word_embeddings=True,
    ),
}  # fmt: skip

# (model, lora, micro-batch sizes, gradient checkpointing)
PRESETS = {
    "cpu": dict(
        configs=[("smollm2-135m-instruct", True, [1, 8], False)],
        dtype="float32",
        device="cpu",
        steps={1: 8, 8: 2},
        warmup={1: 2, 8: 1},
    ),
    "h100": dict(
        configs=[
            ("smollm2-135m", True, [1, 8], False),
            ("llama-1b", True, [1, 8], True),
            ("llama-8b", True, [1, 8], True),
            ("llama-1b", False, [1, 8], True),
            ("llama-8b", False, [1, 8], True),
        ],
        dtype="bfloat16",
        device="cuda",
        steps={1: 16, 8: 6},
        warmup={1: 3, 8: 2},
    ),
    # benchmarks/gpu_checks: packed vs padded after the per-layer sync fix, in ~1.5 min
    "gpu-checks": dict(
        configs=[("smollm2-135m", True, [1, 8], False), ("llama-1b", True, [1, 8], True)],
        dtype="bfloat16",
        device="cuda",
        steps={1: 16, 8: 6},
        warmup={1: 3, 8: 2},
    ),
}
PEAK_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12}  # dense bf16, per GPU


# ------------------------------------------------------------------------------------ data


def draw_examples(n: int, vocab: int, eos: int, seed: int = 0) -> list[dict]:
    """n CUT examples with lengths drawn (with replacement) from the official-sample profile."""
    profile = json.loads(PROFILE.read_text())
    rng = random.Random(seed)
    low = min(1000, vocab // 2)  # keep clear of special tokens

    def ids(k: int) -> list[int]:
        return [rng.randrange(low, vocab) for _ in range(k)]

    examples = []
    for i in range(n):
        plain, judged, response = rng.choice(profile["lengths"])
        examples.append(
            {
                "id": f"x{i}",
                "negative": judged > 0,
                "response_ids": [*ids(response - 1), eos],
                "plain_prompt_ids": ids(plain),
                "judged_prompt_ids": ids(judged) if judged else None,
            }
        )
    return examples


def context_rows(examples: list[dict]) -> list[tuple[list[int], list[int]]]:
    """The (prompt, response) rows CUT scores: each first context, then negatives' plain ones."""
    rows = [
        (ex["judged_prompt_ids"] if ex["negative"] else ex["plain_prompt_ids"], ex["response_ids"])
        for ex in examples
    ]
    rows += [(ex["plain_prompt_ids"], ex["response_ids"]) for ex in examples if ex["negative"]]
    return rows


# ------------------------------------------------------------------------------------ model


def build_model(name: str, lora: bool, dtype: torch.dtype, device: str, checkpointing: bool):
    from transformers import AutoModelForCausalLM, LlamaConfig

    from cutkit.models.loading import load_model
    from cutkit.models.lora import apply_lora

    if name in SHAPES:
        config = LlamaConfig(**SHAPES[name], max_position_embeddings=4096)
        config._attn_implementation = "sdpa"
        with torch.device(device):
            torch.manual_seed(0)
            model = AutoModelForCausalLM.from_config(config, dtype=dtype)
        weights = "random init"
    else:
        model, _ = load_model(name, device=device, dtype=dtype)
        weights = "pretrained"
    if checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.config.use_cache = False
    if lora:
        model = apply_lora(model, True)  # the paper's LoRA: r 16 on gate/up/down_proj
    else:
        model.requires_grad_(True)
    return model.train(), weights


def matmul_params(model) -> int:
    """Parameters that do matrix products per token: all but the input embedding (a lookup);
    a tied output layer counts once, as the head."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    embedding = base.get_input_embeddings().weight
    head = base.get_output_embeddings().weight
    total = sum(p.numel() for p in base.parameters())  # parameters() lists a tied tensor once
    return total if head is embedding else total - embedding.numel()


def step_flops(model, rows, lora: bool) -> float:
    """Model FLOPs of one step over real tokens: (4 or 6) N per token plus causal attention."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    cfg = base.config
    tokens = sum(len(p) + len(r) for p, r in rows)
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    attention_width = cfg.num_attention_heads * head_dim
    attention = (
        6 * cfg.num_hidden_layers * attention_width * sum((len(p) + len(r)) ** 2 for p, r in rows)
    )  # fwd 2 s^2 d (QK and AV, causal half) per layer, x3 with backward
    return (4 if lora else 6) * matmul_params(model) * tokens + attention


# ------------------------------------------------------------------------------------ variants


def trainer_steps(variant: str, model, examples, args, workdir: str):
    """-> (make_batch(micro_examples) -> inputs, run(inputs)) for the trainer-based variants."""
    common = dict(
        output_dir=workdir,
        per_device_train_batch_size=1,
        report_to="none",
        bf16=False,
        fp16=False,
        gradient_checkpointing=False,  # set on the model already, the same for every variant
        use_cpu=args.device == "cpu",
        disable_tqdm=True,
    )
    if variant.startswith("cutkit"):
        from cutkit.train.config import CUTConfig
        from cutkit.train.trainer import CUTTrainer

        config = CUTConfig(**common, packing=variant == "cutkit-packed")
        trainer = CUTTrainer(model, config, train_dataset=examples, processing_class=args.tok)

        def make_batch(micro):
            return trainer._prepare_inputs(trainer.data_collator(micro))

    else:
        import datasets
        from trl import SFTConfig, SFTTrainer

        def features(micro):
            # what TRL's preparation makes of prompt-completion rows: labels, -100 on the prompt
            return [
                {"input_ids": p + r, "labels": [-100] * len(p) + r} for p, r in context_rows(micro)
            ]

        config = SFTConfig(**common, max_length=None, dataset_num_proc=None)
        trainer = SFTTrainer(  # the dataset only has to exist: steps get make_batch's batches
            model,
            args=config,
            train_dataset=datasets.Dataset.from_list(features(examples[:8])),
            processing_class=args.tok,
        )

        def make_batch(micro):
            return trainer._prepare_inputs(trainer.data_collator(features(micro)))

    trainer.current_gradient_accumulation_steps = 1  # what Trainer.train sets before a step

    def run(inputs):
        return trainer.training_step(trainer.model, inputs)

    return make_batch, run, trainer


def released_steps(model, args):
    device = torch.device(args.device)

    def make_batch(micro):
        return {k: v.to(device) for k, v in released_collate(micro, args.tok.pad_token_id).items()}

    return make_batch, lambda inputs: released_step(model, inputs), None


# ------------------------------------------------------------------------------------ measuring


def _rss_kib(field: str) -> int:
    text = Path("/proc/self/status").read_text()
    return int(re.search(rf"{field}:\s+(\d+)", text).group(1))


class PeakMemory:
    """Peak memory over a block: CUDA max allocated, or CPU peak RSS (VmHWM after a reset)."""

    def __init__(self, device: str):
        self.cuda = device.startswith("cuda")

    def __enter__(self):
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
        else:
            Path("/proc/self/clear_refs").write_text("5")  # VmHWM := current RSS
            self.base = _rss_kib("VmRSS") * 1024
        return self

    def __exit__(self, *exc):
        if self.cuda:
            torch.cuda.synchronize()
            self.peak = torch.cuda.max_memory_allocated()
        else:
            self.peak = _rss_kib("VmHWM") * 1024


def cap_cpu_memory() -> None:
    """Limit this process's address space to the machine's RAM, so that a variant that needs more
    fails with an allocation error (recorded as out of memory) instead of the kernel's OOM killer
    ending the whole benchmark."""
    import resource

    ram = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1)) * 1024
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY or soft > ram:
        resource.setrlimit(resource.RLIMIT_AS, (ram, hard))


def scored_labels(batch) -> int:
    """Label positions a batch scores (HF convention: t >= 1 with labels[t] != -100)."""
    return int((batch["labels"][:, 1:] != -100).sum())


def measure(variant, model, micro_batches, warmup, args, lora):
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    attention = model.config._attn_implementation
    with tempfile.TemporaryDirectory() as workdir:
        if variant == "released":
            make_batch, run, trainer = released_steps(model, args)
        else:
            all_examples = [ex for micro in micro_batches for ex in micro]
            make_batch, run, trainer = trainer_steps(variant, model, all_examples, args, workdir)
        batches = [make_batch(micro) for micro in micro_batches]
        for micro, batch in zip(micro_batches, batches, strict=True):  # the same work for all
            expected = sum(len(r) for _, r in context_rows(micro))
            if scored_labels(batch) != expected:
                raise AssertionError(f"{variant}: {scored_labels(batch)} scored, not {expected}")
        times = []
        try:
            for batch in batches[:warmup]:
                run(batch)
                model.zero_grad(set_to_none=True)
            with PeakMemory(args.device) as memory:
                for batch in batches[warmup:]:
                    sync()
                    start = time.perf_counter()
                    run(batch)
                    sync()
                    times.append(time.perf_counter() - start)
                    model.zero_grad(set_to_none=True)
        finally:
            model.zero_grad(set_to_none=True)
            set_attention(model, attention)  # packing switched it to cutkit_varlen
            del trainer, batches
            gc.collect()
            if args.device.startswith("cuda"):
                torch.cuda.empty_cache()
    timed = micro_batches[warmup:]
    rows = [row for micro in timed for row in context_rows(micro)]
    tokens = sum(len(p) + len(r) for p, r in rows)
    scored = sum(len(r) for _, r in rows)
    total = sum(times)
    flops = sum(step_flops(model, context_rows(micro), lora) for micro in timed)
    peak = PEAK_FLOPS.get(next((k for k in PEAK_FLOPS if k in args.device_name), ""))
    return {
        "variant": variant,
        "step_s": round(statistics.median(times), 5),
        "tokens_per_s": round(tokens / total, 1),
        "ms_per_1k_scored": round(1e6 * total / scored, 3),
        "peak_gib": round(memory.peak / 2**30, 3),
        "step_peak_gib": round((memory.peak - memory.base) / 2**30, 3),
        "mfu": round(flops / total / peak, 4) if peak else None,
        "tokens": tokens,
        "scored_tokens": scored,
        "steps": len(times),
    }


def set_attention(model, name: str) -> None:
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    base.set_attn_implementation(name)


@torch.no_grad()
def packing_check(model, micro, args) -> float:
    """Largest |log p| difference between the padded batch (model's own attention) and the packed
    one (cutkit_varlen: flash varlen on CUDA) over the same micro-batch's response tokens."""
    from cutkit.train.attention import use_varlen_attention
    from cutkit.train.batching import CUTCollator
    from cutkit.train.logprobs import label_logprobs_left_aligned

    device = torch.device(args.device)
    scores = []
    attention = model.config._attn_implementation
    for packing in (False, True):
        batch = CUTCollator(args.tok.pad_token_id, packing=packing)(micro)
        batch = {k: v.to(device) for k, v in batch.items()}
        if packing:
            use_varlen_attention(model)
        scores.append(
            label_logprobs_left_aligned(
                model,
                batch["input_ids"],
                batch.get("attention_mask"),
                batch["labels"],
                position_ids=batch.get("position_ids"),
            )
        )
    set_attention(model, attention)
    (a, mask_a), (b, mask_b) = scores
    assert torch.equal(mask_a, mask_b)
    return float((a - b).abs()[mask_a].max())


def run_config(name, lora, micro_batch, checkpointing, args) -> list[dict]:
    dtype = getattr(torch, args.dtype)
    model, weights = build_model(name, lora, dtype, args.device, checkpointing)
    vocab = model.config.vocab_size
    steps, warmup = args.steps_for(micro_batch), args.warmup_for(micro_batch)
    examples = draw_examples((steps + warmup) * micro_batch, vocab, args.tok.eos_token_id, seed=1)
    micro_batches = [examples[i : i + micro_batch] for i in range(0, len(examples), micro_batch)]
    results = []
    check = (
        packing_check(model, micro_batches[0], args) if "cutkit-packed" in args.variants else None
    )
    for variant in args.variants:
        row = {
            "model": name,
            "weights": weights,
            "tuning": "lora" if lora else "full",
            "micro_batch": micro_batch,
            "checkpointing": checkpointing,
            "dtype": args.dtype,
        }
        try:
            row |= measure(variant, model, micro_batches, warmup, args, lora)
            if variant == "cutkit-packed":
                row["max_logp_diff_vs_padded"] = check
        except Exception as error:  # one broken variant must not hide the others
            out_of_memory = isinstance(error, torch.OutOfMemoryError) or (
                "can't allocate memory" in str(error)  # CPU, under cap_cpu_memory
            )
            if not out_of_memory:
                traceback.print_exc()
            message = "out of memory" if out_of_memory else f"{type(error).__name__}: {error}"
            row |= {"variant": variant, "error": message[:300]}
        gc.collect()
        if args.device.startswith("cuda"):
            torch.cuda.empty_cache()
        print(json.dumps(row), flush=True)
        results.append(row)
        args.save(results_so_far=args.results + results)
    del model
    gc.collect()
    if args.device.startswith("cuda"):
        torch.cuda.empty_cache()
    return results


# ------------------------------------------------------------------------------------ report


def ratios(results: list[dict]) -> list[dict]:
    """cutkit variants against released (tokens/s, memory) and trl (time per scored token)."""
    out = []
    keys = ("model", "tuning", "micro_batch")
    for row in results:
        if not row["variant"].startswith("cutkit") or "error" in row:
            continue
        same = [r for r in results if all(r[k] == row[k] for k in keys) and "error" not in r]
        released = next((r for r in same if r["variant"] == "released"), None)
        trl = next((r for r in same if r["variant"] == "trl"), None)
        out.append(
            {
                **{k: row[k] for k in keys},
                "variant": row["variant"],
                "speed_vs_released": released
                and round(row["tokens_per_s"] / released["tokens_per_s"], 2),
                "memory_vs_released": released and round(row["peak_gib"] / released["peak_gib"], 2),
                "step_memory_vs_released": released
                and round(row["step_peak_gib"] / max(released["step_peak_gib"], 1e-9), 2),
                "time_per_scored_vs_trl": trl
                and round(row["ms_per_1k_scored"] / trl["ms_per_1k_scored"], 2),
            }
        )
    return out


def markdown(results: list[dict], meta: dict) -> str:
    lines = [
        f"# Training step: cutkit vs the released code vs TRL ({meta['device_name']})",
        "",
        f"Command: `{meta['command']}`  ",
        f"torch {meta['torch']}, transformers {meta['transformers']}, peft {meta['peft']}, "
        f"trl {meta['trl']}, {meta['dtype']}, {meta['platform']}  ",
        f"Data: micro-batches drawn from {meta['profile']}; a step is one micro-batch's forward + "
        "backward (optimizer update excluded, identical for all variants); median step of the "
        "timed steps after warm-up.",
        "",
        "| model | tuning | mb | variant | step s | tokens/s | ms / 1k scored | peak GiB "
        "| step peak GiB | MFU |",
        "|---|---|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        head = f"| {r['model']} | {r['tuning']} | {r['micro_batch']} | {r['variant']} |"
        if "error" in r:
            lines.append(f"{head} {r['error']} | | | | | |")
            continue
        mfu = f"{100 * r['mfu']:.1f}%" if r.get("mfu") is not None else "n/a"
        lines.append(
            f"{head} {r['step_s']:.3f} | {r['tokens_per_s']:,.0f} | {r['ms_per_1k_scored']:.1f} | "
            f"{r['peak_gib']:.2f} | {r['step_peak_gib']:.2f} | {mfu} |"
        )
    lines += [
        "",
        "Ratios (cutkit / released: tokens/s, peak memory, step peak memory; cutkit / TRL: time "
        "per scored token):",
        "",
        "| model | tuning | mb | variant | speed vs released | memory vs released "
        "| step memory vs released | time/scored vs TRL |",
        "|---|---|---:|---|---:|---:|---:|---:|",
    ]
    for r in ratios(results):
        lines.append(
            f"| {r['model']} | {r['tuning']} | {r['micro_batch']} | {r['variant']} | "
            f"{r['speed_vs_released']} | {r['memory_vs_released']} | "
            f"{r['step_memory_vs_released']} | {r['time_per_scored_vs_trl']} |"
        )
    return "\n".join(lines) + "\n"


def versions() -> dict:
    import peft
    import transformers

    try:
        import trl

        trl_version = trl.__version__
    except ImportError:
        trl_version = "not installed"
    return {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
        "trl": trl_version,
    }


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", choices=sorted(PRESETS), help="a full configuration matrix")
    p.add_argument("--model", default="tiny", help="a SHAPES name (random init) or a model name")
    p.add_argument("--full", action="store_true", help="full fine-tuning instead of LoRA")
    p.add_argument("--micro-batch", type=int, nargs="+", default=[1])
    p.add_argument("--checkpointing", action="store_true", help="gradient checkpointing")
    p.add_argument("--steps", type=int, default=3, help="timed steps per variant")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps before them")
    p.add_argument("--dtype", default=None, help="float32 on CPU, bfloat16 on CUDA by default")
    p.add_argument("--device", default=None)
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    p.add_argument("--threads", type=int, default=None, help="torch threads (CPU)")
    p.add_argument(
        "--tokenizer",
        default="smollm2-135m-instruct",
        help="tokenizer name or folder (pad/eos ids and the trainers' processing_class)",
    )
    p.add_argument("--out", help="write OUT.json and OUT.md")
    args = p.parse_args(argv)
    preset = PRESETS.get(args.preset, {})
    args.device = (
        args.device or preset.get("device") or ("cuda" if torch.cuda.is_available() else "cpu")
    )
    args.dtype = (
        args.dtype or preset.get("dtype") or ("bfloat16" if args.device == "cuda" else "float32")
    )
    configs = preset.get("configs") or [
        (args.model, not args.full, args.micro_batch, args.checkpointing)
    ]
    args.steps_for = lambda mb: preset["steps"][mb] if preset else args.steps
    args.warmup_for = lambda mb: preset["warmup"][mb] if preset else args.warmup
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "cpu" and os.environ.get("MALLOC_MMAP_THRESHOLD_") is None and argv is None:
        # RSS follows live tensors only if glibc returns big blocks at free: re-exec with that set
        env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="1048576", MALLOC_TRIM_THRESHOLD_="0")
        os.execve(sys.executable, [sys.executable, *sys.argv], env)

    if args.device == "cpu" and argv is None:  # as a script only: a caller's process keeps its
        cap_cpu_memory()  # limits (children inherit RLIMIT_AS; a browser started later fails)

    from cutkit.models.loading import load_tokenizer

    args.tok = load_tokenizer(args.tokenizer)
    cuda = args.device.startswith("cuda")
    args.device_name = (
        torch.cuda.get_device_name() if cuda else f"CPU, {torch.get_num_threads()} threads"
    )
    meta = {
        "command": "python benchmarks/step/bench_step.py " + " ".join(argv or sys.argv[1:]),
        "device_name": args.device_name,
        "platform": platform.platform(),
        "dtype": args.dtype,
        "profile": f"{PROFILE.name} (official CUT sample lengths, Align-P 0.25)",
        **versions(),
    }
    args.results = []

    def save(results_so_far):
        if args.out:
            out = Path(args.out)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.with_suffix(".json").write_text(
                json.dumps(
                    {"meta": meta, "results": results_so_far, "ratios": ratios(results_so_far)},
                    indent=1,
                )
            )
            out.with_suffix(".md").write_text(markdown(results_so_far, meta))

    args.save = save
    for name, lora, micro_batches, checkpointing in configs:
        for micro_batch in micro_batches:
            args.results += run_config(name, lora, micro_batch, checkpointing, args)
    save(args.results)
    print(markdown(args.results, meta))
    return args.results


if __name__ == "__main__":
    main()
