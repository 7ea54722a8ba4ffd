"""A local language model as the judge."""

from __future__ import annotations

import os
from collections.abc import Sequence

from cutkit.online.judges.base import (
    JUDGE_PROMPT,
    JUDGMENT_CUE,
    JudgeResult,
    check_judge_lengths,
    instruction_text,
    judgment_from_text,
)
from cutkit.online.tasks import Task


class ModelJudge:
    """A local causal LM as the judge: :data:`JUDGE_PROMPT` as the user turn of its chat
    template (or followed by :data:`JUDGMENT_CUE` without one), greedy, batched.

    Args:
        model: a loaded model, or a name / path for :func:`cutkit.load_model`.
        tokenizer: the model's tokenizer (loaded with the model when ``model`` is a path).
        batch_size: prompts per generation batch.
        max_new_tokens: longest judgment in tokens.
        prompt: the template, with ``{instruction}`` and ``{response}`` fields.
        device: where to load a model given by path (None: CUDA if available).
        show_progress: a tqdm bar over the batches.
    """

    def __init__(
        self,
        model,
        tokenizer=None,
        *,
        batch_size: int = 8,
        max_new_tokens: int = 256,
        prompt: str = JUDGE_PROMPT,
        device: str | None = None,
        show_progress: bool = False,
    ):
        self.name = "model"
        if isinstance(model, str | os.PathLike):
            from cutkit.models.loading import load_model

            self.name = f"model:{os.fspath(model)}"
            model, tokenizer = load_model(model, device=device)
        if tokenizer is None:
            raise ValueError("ModelJudge needs the tokenizer of the model: pass tokenizer=...")
        self.model, self.tokenizer = model, tokenizer
        self.batch_size, self.max_new_tokens = batch_size, max_new_tokens
        self.prompt, self.show_progress = prompt, show_progress

    def prompts(self, instructions: Sequence[str | Task], responses: Sequence[str]) -> list[str]:
        """The full prompt texts the model is given (chat template applied)."""
        check_judge_lengths(instructions, responses)
        texts = [
            self.prompt.format(instruction=instruction_text(i), response=r)
            for i, r in zip(instructions, responses, strict=True)
        ]
        if getattr(self.tokenizer, "chat_template", None):
            return [
                self.tokenizer.apply_chat_template(
                    [{"role": "user", "content": text}], add_generation_prompt=True, tokenize=False
                )
                for text in texts
            ]
        return [text + JUDGMENT_CUE for text in texts]

    def judge(
        self, instructions: Sequence[str | Task], responses: Sequence[str]
    ) -> list[JudgeResult]:
        from cutkit.eval.generation import generate_from_ids

        prompts = self.prompts(instructions, responses)
        chat = bool(getattr(self.tokenizer, "chat_template", None))
        ids = [self.tokenizer(p, add_special_tokens=not chat)["input_ids"] for p in prompts]
        replies = generate_from_ids(
            self.model,
            self.tokenizer,
            ids,
            batch_size=self.batch_size,
            max_new_tokens=self.max_new_tokens,
            longest_first=True,
            desc="judging" if self.show_progress else None,
        )
        return [judgment_from_text(reply) for reply in replies]
