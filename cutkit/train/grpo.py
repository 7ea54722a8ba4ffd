r"""GRPO baseline: reinforce the model's own samples that pass a verifier, through TRL.

For each training prompt x, GRPO (Shao et al. 2024) samples G completions y_1..y_G from the
current policy, scores each with a reward r_i and moves the policy towards the completions that
beat their group: advantage A_i = (r_i - mean_j r_j) / (std_j r_j + 1e-4) (TRL's
``scale_rewards="group"``). With one update per generation (``num_iterations=1``) the importance
ratio is 1 in value, and TRL 1.16's default ``loss_type="dapo"`` with ``beta=0`` (no reference
model, no KL term) has, over the N completions of an optimizer step, the gradient of

    L = - sum_i A_i sum_t log pi(y_it | x, y_i<t) / sum_i |y_i|        (|y_i| counts its EOS).

The reward (:func:`verifiable_reward`) is binary: 1.0 when a verifier passes the completion
against the task of its prompt, else 0.0. The verifier is passed in, because what checks a task
lives in a later layer: :func:`cutkit.online.checkers.verify_honestly` (every constraint met
*and* a sound answer: finished, not degenerate, on topic) is the learning curves' GRPO arm
(benchmarks/curves). Why binary: a partial credit for a constraint met by an unsound answer
("Small." for "at most 10 words") would rank it above a sound answer that is a word too long,
i.e. pay for the gaming the content check exists to catch; 0/1 makes the reward exactly the
honest satisfaction the arms are scored on. A group whose G completions all score the same has
zero advantage and gives no gradient.

Prompts (:func:`grpo_prompts`): one per distinct task of the records (``record.meta["task"]``,
a ``Task.to_dict()``), in the template's plain prompt, the prompt every other arm trains and is
evaluated with. The responses and judgments of the records are not used.

Budget: TRL's batch counts *completions*: an optimizer step consumes
``per_device_train_batch_size x gradient_accumulation_steps`` completions, i.e. that many
divided by ``num_generations`` prompts. The default, 8 completions = 2 prompts x 4 generations,
matches the 8 records per step of the other arms; ``max_steps`` is the shared budget.

Generation cost: :func:`train_grpo` times TRL's sampling (its ``_generate``: tokenize, sample,
decode) and the reward calls, and stores seconds on the trainer as ``trainer.cutkit_timing``
(``generation_s``, ``reward_s``, ``total_s`` of ``trainer.train()``); every log line carries the
running ``timing/generation_s`` and ``timing/reward_s``.

Rules that differ from the CUT arms (TRL 1.16): the model samples in training mode, so LoRA
dropout is on while generating (``disable_dropout=False``); samples are drawn at temperature 1
(top-p 1, no top-k), not greedily; a completion ends at the first EOS of the tokenizer or the
model's generation config (:func:`completion_stop_ids`), which stays in the loss (the model learns
to stop); one cut at ``max_completion_length`` stays in the loss with reward 0
(``mask_truncated_completions=False``); prompts are never truncated (the shared ``max_length`` does
not apply); the logged ``loss`` is not an objective value (the ratio is 1: it is minus the
length-weighted mean advantage); ``frac_reward_zero_std`` is the share of groups that gave no
gradient.

>>> trainer = train_grpo(model, tok, records, verify=verify_honestly, output_dir="runs/grpo",
...                      max_steps=20)                                      # doctest: +SKIP
>>> trainer.cutkit_timing                                                   # doctest: +SKIP
{'generation_s': 41.2, 'reward_s': 0.1, 'total_s': 63.0}
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from cutkit.data.records import JudgmentRecord, RecordError
from cutkit.data.templates import PromptTemplate, get_template
from cutkit.train.trl_bridge import default_precision, require_trl, trl_prompt
from cutkit.train.vocabulary import DEFAULT_TEMPLATE

Verifier = Callable[[dict, str, bool], bool]
"""``verify(task, completion, finished) -> passed``: ``task`` a ``Task.to_dict()``, ``finished``
False when the completion stopped at ``max_completion_length`` without an EOS."""


def refuse_records_without_tasks(
    records: Sequence[JudgmentRecord], *, source: str = "<records>"
) -> None:
    """Raise :class:`RecordError` (field ``meta``) at the first record without a task dict in
    ``record.meta["task"]``: GRPO's reward checks completions against their task."""
    for index, record in enumerate(records):
        task = record.meta.get("task") if isinstance(record.meta, dict) else None
        if not isinstance(task, dict) or not {"id", "instruction", "constraints"} <= set(task):
            raise RecordError(
                f"record {record.id!r} carries no checkable task in meta['task'], and GRPO "
                "rewards completions by checking them against their task",
                source=source,
                index=index,
                field="meta",
                fix="train GRPO on records of constraint tasks (meta={'task': task.to_dict()}, as "
                "benchmarks/onpolicy/onpolicy_experiment.py writes them), or choose another "
                "objective",
            )


def grpo_prompts(
    records: Sequence[JudgmentRecord],
    tokenizer,
    template: str | PromptTemplate = DEFAULT_TEMPLATE,
):
    """A ``datasets.Dataset`` of (prompt, task_id, task) rows, one per distinct task.

    ``prompt`` is the template's plain prompt of the record's instruction (TRL text),
    ``task`` the task as JSON (``Task.to_dict()``). Tasks are distinct by ``id``, in order of
    first appearance. Records without a task raise :class:`~cutkit.data.records.RecordError`;
    two tasks with the same prompt raise ValueError (the reward finds a task by its prompt).
    """
    import datasets

    template = get_template(template, tokenizer)
    records = list(records)
    refuse_records_without_tasks(records)
    rows: dict[str, list[str]] = {"prompt": [], "task_id": [], "task": []}
    task_of_prompt: dict[str, str] = {}
    for record in records:
        task = record.meta["task"]
        if task["id"] in rows["task_id"]:
            continue
        prompt = trl_prompt(record.prompt_instruction, tokenizer, template, record.history)
        if prompt in task_of_prompt:
            raise ValueError(
                f"tasks {task_of_prompt[prompt]!r} and {task['id']!r} have the same prompt, so "
                "the reward cannot tell which one a completion answers; keep one of them"
            )
        task_of_prompt[prompt] = task["id"]
        rows["prompt"].append(prompt)
        rows["task_id"].append(task["id"])
        rows["task"].append(json.dumps(task))
    return datasets.Dataset.from_dict(rows)


def completion_stop_ids(model, tokenizer) -> list[int]:
    """The token ids that end a sampled completion, as TRL 1.16's GRPOTrainer collects them:
    the model's ``generation_config.eos_token_id`` (one or several) plus the tokenizer's EOS."""
    ids = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids = [] if ids is None else [ids] if isinstance(ids, int) else list(ids)
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids = [tokenizer.eos_token_id, *ids]
    return ids


def verifiable_reward(
    tasks_by_prompt: Mapping[str, dict],
    verify: Verifier,
    eos_token_ids: Sequence[int] = (),
):
    """A TRL reward function: 1.0 when ``verify(task, completion, finished)`` passes, else 0.0.

    ``tasks_by_prompt`` maps each prompt text to its task dict (``Task.to_dict()``). TRL calls
    the function with ``prompts``, ``completions`` (decoded without special tokens) and
    ``completion_ids`` (up to and including the first EOS); a completion is ``finished`` when its
    last id is one of ``eos_token_ids`` (every completion counts as finished when they are not
    given, or when TRL passes no ids). Binary on purpose (module docstring).
    """
    stops = set(eos_token_ids)

    def verified(prompts, completions, completion_ids=None, **_) -> list[float]:
        rewards = []
        for index, (prompt, completion) in enumerate(zip(prompts, completions, strict=True)):
            if prompt not in tasks_by_prompt:
                raise KeyError(
                    f"the prompt {str(prompt)[:80]!r} is none of the {len(tasks_by_prompt)} GRPO "
                    "prompts; build the reward from the prompts grpo_prompts() made"
                )
            text = completion if isinstance(completion, str) else completion[-1]["content"]
            ids = None if completion_ids is None else list(completion_ids[index])
            finished = ids is None or not stops or (bool(ids) and ids[-1] in stops)
            rewards.append(1.0 if verify(tasks_by_prompt[prompt], text, finished) else 0.0)
        return rewards

    return verified


def _timed(method, totals: dict[str, float], key: str):
    """``method`` that adds its wall-clock seconds to ``totals[key]``."""

    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return method(*args, **kwargs)
        finally:
            totals[key] += time.perf_counter() - start

    return wrapper


def train_grpo(
    model,
    tokenizer,
    records: Sequence[JudgmentRecord],
    *,
    output_dir: str,
    verify: Verifier,
    template: str | PromptTemplate = DEFAULT_TEMPLATE,
    num_generations: int = 4,
    max_completion_length: int = 64,
    beta: float = 0.0,
    callbacks: Sequence | None = None,
    **training_kwargs: Any,
):
    """Train ``model`` with GRPO on the tasks of ``records``; returns the TRL trainer, with
    ``trainer.cutkit_timing = {"generation_s", "reward_s", "total_s"}`` (seconds).

    Args:
        model: a causal LM, typically a ``PeftModel`` (only the adapter trains).
        tokenizer: its tokenizer.
        records: records whose ``meta["task"]`` is a ``Task.to_dict()`` (:func:`grpo_prompts`).
        output_dir: run directory.
        verify: ``(task dict, completion, finished) -> bool``, the reward's verifier
            (:func:`cutkit.online.checkers.verify_honestly` for the learning curves' arm).
        template: "alpaca" or "chat", as for the other objectives.
        num_generations: completions sampled per prompt (G >= 2).
        max_completion_length: most tokens sampled per completion; a completion cut there has no
            EOS and reaches ``verify`` with ``finished=False``.
        beta: KL coefficient to the initial model; 0 (TRL's default) loads no reference.
        callbacks: ``transformers.TrainerCallback`` objects for the trainer.
        **training_kwargs: any ``trl.GRPOConfig`` field (``max_steps``, ``learning_rate``,
            ``seed``, ``temperature``, ``loss_type``, ...). Defaults differing from TRL's:
            ``per_device_train_batch_size=8`` completions (2 prompts x 4 generations),
            ``activation_checkpointing=False`` (as the CUT arms; it only trades time for
            memory), bf16 only on a GPU that supports it.
    """
    trl = require_trl("GRPO")
    training_kwargs = {"per_device_train_batch_size": 8, **default_precision(training_kwargs)}
    if not {"gradient_checkpointing", "activation_checkpointing"} & set(training_kwargs):
        training_kwargs["activation_checkpointing"] = False  # TRL's default is True
    completions = training_kwargs["per_device_train_batch_size"] * training_kwargs.get(
        "gradient_accumulation_steps", 1
    )
    if num_generations < 2 or completions % num_generations:
        raise ValueError(
            f"GRPO's batch counts completions: per_device_train_batch_size x "
            f"gradient_accumulation_steps = {completions} per optimizer step must be a multiple "
            f"of num_generations={num_generations} (>= 2; whole groups of one prompt's samples)"
        )
    template = get_template(template, tokenizer)
    train = grpo_prompts(records, tokenizer, template)
    tasks_by_prompt = {
        p: json.loads(t) for p, t in zip(train["prompt"], train["task"], strict=True)
    }
    reward = verifiable_reward(tasks_by_prompt, verify, completion_stop_ids(model, tokenizer))
    config = trl.GRPOConfig(
        output_dir=str(output_dir),
        num_generations=num_generations,
        max_completion_length=max_completion_length,
        beta=beta,
        **training_kwargs,
    )
    trainer = trl.GRPOTrainer(
        model=model,
        reward_funcs=reward,
        args=config,
        train_dataset=train,
        processing_class=tokenizer,
        callbacks=list(callbacks or ()),
    )
    totals = {"generation_s": 0.0, "reward_s": 0.0}
    # TRL 1.16's sampling step and reward step (private methods of its trainer: the only places
    # where the two costs are separable; TRL's own profiling reaches wandb/trackio only)
    trainer._generate = _timed(trainer._generate, totals, "generation_s")
    trainer._calculate_rewards = _timed(trainer._calculate_rewards, totals, "reward_s")
    log = trainer.log

    def log_with_timing(logs: dict[str, float], *args, **kwargs) -> None:
        logs.update({f"timing/{k}": round(v, 3) for k, v in totals.items()})
        log(logs, *args, **kwargs)

    trainer.log = log_with_timing
    start = time.perf_counter()
    trainer.train()
    trainer.cutkit_timing = {**totals, "total_s": time.perf_counter() - start}
    return trainer
