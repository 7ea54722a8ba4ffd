"""Prompt templates: the plain prompt (instruction only) and the judged prompt (instruction + judgment).

CUT scores the same response tokens under both prompts. Two variants exist:

- ``"alpaca"``: the paper's exact strings (docs/method.md §2), for base models and to
  reproduce the paper;
- ``"chat"``: the tokenizer's own chat template, the instruction (plain) or the instruction and the
  judgment (judged) as the user turn, for chat models such as SmolLM2-Instruct. A conversational
  record's earlier turns (``history``: system, user and assistant messages) come first, unchanged;
  the judgment joins only the last user turn, so both contexts end with the same response.

Training and inference must use the same variant. The response follows the prompt directly and
ends with the tokenizer's EOS token.

>>> t = get_template("alpaca")
>>> print(t.plain("Name a prime number."))                          # doctest: +NORMALIZE_WHITESPACE
Below is an instruction that describes a task. Write a response that appropriately completes the request.
<BLANKLINE>
### Instruction:
Name a prime number.
<BLANKLINE>
### Response:
<BLANKLINE>
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

ALPACA_PLAIN = (
    "Below is an instruction that describes a task. Write a response that appropriately completes "
    "the request.\n\n### Instruction:\n{instruction}\n\n### Response:\n"
)
ALPACA_JUDGED = (
    "Below is an instruction that describes a task. Write a response to the instruction and the "
    "response should match the corresponding judgment.\n\n### Instruction:\n{instruction}\n\n"
    "### Judgment:\n{judgment}\n\n### Response:\n"
)
CHAT_JUDGED_USER = (
    "Write a response to the instruction and the response should match the corresponding "
    "judgment.\n\n### Instruction:\n{instruction}\n\n### Judgment:\n{judgment}"
)
"""The user turn of the judged chat prompt, worded like the paper's judged template."""


@dataclass(frozen=True)
class PromptTemplate:
    """Renders the plain and the judged prompt for an instruction.

    Attributes:
        name: "alpaca" or "chat".
        add_special_tokens: whether the tokenizer should add its special tokens (BOS) when the prompt
            is tokenized; False for chat prompts, whose template already writes them.
    """

    name: str
    add_special_tokens: bool = True
    tokenizer: Any = None  # only the chat variant needs it

    def plain(self, instruction: str, history: Sequence[Mapping[str, str]] = ()) -> str:
        """Prompt with the instruction only (Align-P and Misalign contexts, and inference), after
        the conversation's earlier ``history`` messages (chat template only)."""
        if self.name == "alpaca":
            self._single_turn(history)
            return ALPACA_PLAIN.format(instruction=instruction)
        return self._chat(instruction, history)

    def judged(
        self, instruction: str, judgment: str, history: Sequence[Mapping[str, str]] = ()
    ) -> str:
        """Prompt with the instruction and the judgment (the Align-N context)."""
        if self.name == "alpaca":
            self._single_turn(history)
            return ALPACA_JUDGED.format(instruction=instruction, judgment=judgment)
        turn = CHAT_JUDGED_USER.format(instruction=instruction, judgment=judgment)
        return self._chat(turn, history)

    def _chat(self, user_turn: str, history: Sequence[Mapping[str, str]] = ()) -> str:
        messages = [*({"role": m["role"], "content": m["content"]} for m in history)]
        return self.tokenizer.apply_chat_template(
            [*messages, {"role": "user", "content": user_turn}],
            add_generation_prompt=True,
            tokenize=False,
        )

    @staticmethod
    def _single_turn(history: Sequence[Mapping[str, str]]) -> None:
        if history:
            raise ValueError(
                "the 'alpaca' template is single-turn and this record has earlier turns "
                "(history): use template='chat' for conversational records"
            )

    def prompt_ids(self, tokenizer, prompt: str) -> list[int]:
        """Token ids of a rendered prompt (BOS added only where the template does not write it)."""
        return tokenizer(prompt, add_special_tokens=self.add_special_tokens)["input_ids"]

    @staticmethod
    def response_ids(tokenizer, response: str) -> list[int]:
        """Token ids of a response: tokenized on its own, then EOS (a trained, flaggable token)."""
        if tokenizer.eos_token_id is None:
            raise ValueError("the tokenizer has no EOS token; CUT responses end with EOS")
        return [*tokenizer(response, add_special_tokens=False)["input_ids"], tokenizer.eos_token_id]


TEMPLATES = ("alpaca", "chat")


def get_template(name: str | PromptTemplate = "alpaca", tokenizer=None) -> PromptTemplate:
    """The template called ``name`` ("alpaca" or "chat"; "chat" needs the tokenizer)."""
    if isinstance(name, PromptTemplate):
        return name
    if name == "alpaca":
        return PromptTemplate("alpaca")
    if name == "chat":
        if tokenizer is None or not getattr(tokenizer, "chat_template", None):
            raise ValueError(
                "the 'chat' template uses the tokenizer's chat template: pass a "
                "tokenizer that has one, or use template='alpaca'"
            )
        return PromptTemplate("chat", add_special_tokens=False, tokenizer=tokenizer)
    raise ValueError(f"unknown template {name!r}; choose one of {TEMPLATES}")
