"""Judge specs (``rule``, ``model:PATH``, ``openai:URL,MODEL[,ENV_VAR]``) -> judges."""

from __future__ import annotations

from typing import Any

from cutkit.online.judges.base import Judge
from cutkit.online.judges.http import OpenAICompatibleJudge
from cutkit.online.judges.model import ModelJudge
from cutkit.online.judges.rule import RuleJudge

JUDGE_SPECS = ("rule", "model:PATH", "openai:URL,MODEL[,ENV_VAR]")


def parse_judge_spec(spec: str) -> tuple[str, list[str]]:
    """``(kind, arguments)`` of a judge spec (see :func:`make_judge`); a ValueError naming the
    accepted forms for anything else."""
    kind, _, rest = spec.partition(":")
    if kind == "rule" and not rest:
        return kind, []
    if kind == "model" and rest:
        return kind, [rest]
    if kind == "openai" and rest:
        parts = [part.strip() for part in rest.split(",")]
        if len(parts) in (2, 3) and all(parts[:2]):
            return kind, parts
    raise ValueError(
        f"unknown judge spec {spec!r}; use one of: {', '.join(JUDGE_SPECS)} (e.g. "
        "'openai:https://api.openai.com/v1,gpt-4o-mini,OPENAI_API_KEY')"
    )


def make_judge(spec: str, *, seed: int = 0, device: str | None = None, **options) -> Judge:
    """A judge from a CLI spec: ``rule``, ``model:PATH`` (any name or path
    :func:`cutkit.load_model` takes) or ``openai:URL,MODEL[,ENV_VAR]`` (ENV_VAR holds the API key;
    left out, no key is sent). ``options`` go to the judge's constructor."""
    kind, args = parse_judge_spec(spec)
    if kind == "rule":
        return RuleJudge(seed=seed, **options)
    if kind == "model":
        return ModelJudge(args[0], device=device, **options)
    env = args[2] if len(args) == 3 and args[2] else None
    return OpenAICompatibleJudge(args[0], args[1], api_key_env=env, seed=seed, **options)


def judge_options(
    spec: str,
    *,
    batch_size: int,
    max_new_tokens: int,
    show_progress: bool,
    timeout: float | None = None,
    attempts: int | None = None,
    concurrency: int | None = None,
    max_reply_bytes: int | None = None,
    deadline: float | None = None,
    content_check: bool = True,
) -> dict[str, Any]:
    """The constructor options of :func:`make_judge` that the judge of ``spec`` takes, from a
    run's settings: ``content_check`` for ``rule`` (on by default: the online loop's rule judge
    criticises degenerate and off-topic answers too, as honest satisfaction scores them); a model
    judge's batch size, judgment length (tokens) and
    progress bar; an API judge's judgment length (``max_tokens``), progress bar and, those not
    None, its request deadline (``timeout``, seconds), attempts (``max_attempts``),
    ``concurrency``, reply cap (``max_reply_bytes``) and the deadline of one judging call
    (``deadline``, seconds)."""
    kind, _ = parse_judge_spec(spec)
    if kind == "model":
        return dict(
            batch_size=batch_size, max_new_tokens=max_new_tokens, show_progress=show_progress
        )
    if kind == "openai":
        calls = dict(
            timeout=timeout,
            max_attempts=attempts,
            concurrency=concurrency,
            max_reply_bytes=max_reply_bytes,
            deadline=deadline,
        )
        options = dict(max_tokens=max_new_tokens, show_progress=show_progress)
        return options | {name: value for name, value in calls.items() if value is not None}
    return dict(content_check=content_check)
