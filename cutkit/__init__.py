"""cutkit: align language models with natural-language judgments by Contrastive Unlikelihood Training.

CUT (Xu et al., "Reasons to Reject?", arXiv 2312.14591) trains on instruction / response / judgment
triplets: likelihood on good responses, likelihood on bad responses given their critique, and
unlikelihood on exactly the tokens the critique makes more probable.

The public names below are imported lazily, so ``import cutkit`` is cheap and pulls in torch and
transformers only when a model-facing name is first used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    # records and loaders
    "JudgmentRecord": "cutkit.records",
    "RecordError": "cutkit.records",
    "load_records": "cutkit.loaders",
    "LoadReport": "cutkit.loaders",
    # models
    "load_model": "cutkit.models",
    "load_tokenizer": "cutkit.models",
    "default_lora_config": "cutkit.models",
    "tiny_model": "cutkit.tiny",
    # templates
    "PromptTemplate": "cutkit.templates",
    "get_template": "cutkit.templates",
    # batching
    "build_examples": "cutkit.batching",
    "CUTCollator": "cutkit.batching",
    "use_varlen_attention": "cutkit.attention",
    # maths
    "label_logprobs": "cutkit.logprobs",
    "cut_loss": "cutkit.losses",
    "CUTLossOutput": "cutkit.losses",
    # training
    "CUTConfig": "cutkit.trainer",
    "CUTTrainer": "cutkit.trainer",
    # inspection and evaluation
    "score_tokens": "cutkit.inspection",
    "detection_report": "cutkit.inspection",
    "detection_quality": "cutkit.inspection",
    "push_balance": "cutkit.inspection",
    "record_groups": "cutkit.inspection",
    "write_report": "cutkit.inspection",
    "TokenView": "cutkit.tokenview",
    "evaluate": "cutkit.evaluation",
    "answer_correct": "cutkit.evaluation",
    "generate_responses": "cutkit.generation",
    "generate_answers": "cutkit.generation",
    "Generation": "cutkit.generation",
    "read_figures": "cutkit.evaluation",
    # baselines and comparison
    "OBJECTIVES": "cutkit.objectives",
    "train_dpo": "cutkit.dpo",
    "compare": "cutkit.comparison",
    "CompareSettings": "cutkit.comparison",
    "summarize": "cutkit.comparison",
    "parse_arm": "cutkit.comparison",
    # online alignment
    "OnlineConfig": "cutkit.online",
    "OnlineRun": "cutkit.online",
    "run_online": "cutkit.online",
    "RuleJudge": "cutkit.judges",
    "ModelJudge": "cutkit.judges",
    "OpenAICompatibleJudge": "cutkit.judges",
    "Judgment": "cutkit.judges",
    "JudgeFailure": "cutkit.judges",
    "make_judge": "cutkit.judges",
    "Task": "cutkit.constraints",
    "generate_tasks": "cutkit.constraints",
    "heldout_tasks": "cutkit.constraints",
    "word_limit_tasks": "cutkit.constraints",
}

__all__ = [
    "OBJECTIVES",
    "CUTCollator",
    "CUTConfig",
    "CUTLossOutput",
    "CUTTrainer",
    "CompareSettings",
    "Generation",
    "JudgeFailure",
    "Judgment",
    "JudgmentRecord",
    "LoadReport",
    "ModelJudge",
    "OnlineConfig",
    "OnlineRun",
    "OpenAICompatibleJudge",
    "PromptTemplate",
    "RecordError",
    "RuleJudge",
    "Task",
    "TokenView",
    "__version__",
    "answer_correct",
    "build_examples",
    "compare",
    "cut_loss",
    "default_lora_config",
    "detection_quality",
    "detection_report",
    "evaluate",
    "generate_answers",
    "generate_responses",
    "generate_tasks",
    "get_template",
    "heldout_tasks",
    "label_logprobs",
    "load_model",
    "load_records",
    "load_tokenizer",
    "make_judge",
    "parse_arm",
    "push_balance",
    "read_figures",
    "record_groups",
    "run_online",
    "score_tokens",
    "summarize",
    "tiny_model",
    "train_dpo",
    "use_varlen_attention",
    "word_limit_tasks",
    "write_report",
]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'cutkit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:  # pragma: no cover - static analysers see the real names
    from cutkit.batching import CUTCollator, build_examples
    from cutkit.comparison import CompareSettings, compare, parse_arm, summarize
    from cutkit.constraints import Task, generate_tasks, heldout_tasks, word_limit_tasks
    from cutkit.dpo import train_dpo
    from cutkit.evaluation import answer_correct, evaluate, read_figures
    from cutkit.generation import Generation, generate_answers, generate_responses
    from cutkit.inspection import (
        detection_quality,
        detection_report,
        push_balance,
        record_groups,
        score_tokens,
        write_report,
    )
    from cutkit.judges import (
        JudgeFailure,
        Judgment,
        ModelJudge,
        OpenAICompatibleJudge,
        RuleJudge,
        make_judge,
    )
    from cutkit.loaders import LoadReport, load_records
    from cutkit.logprobs import label_logprobs
    from cutkit.losses import CUTLossOutput, cut_loss
    from cutkit.models import default_lora_config, load_model, load_tokenizer
    from cutkit.objectives import OBJECTIVES
    from cutkit.online import OnlineConfig, OnlineRun, run_online
    from cutkit.records import JudgmentRecord, RecordError
    from cutkit.templates import PromptTemplate, get_template
    from cutkit.tiny import tiny_model
    from cutkit.tokenview import TokenView
    from cutkit.trainer import CUTConfig, CUTTrainer
