"""cutkit: align language models with natural-language judgments by Contrastive Unlikelihood Training.

CUT (Xu et al., "Reasons to Reject?", arXiv 2312.14591) trains on instruction / response / judgment
triplets: likelihood on good responses, likelihood on bad responses given their critique, and
unlikelihood on exactly the tokens the critique makes more probable (``docs/method.md``).

The package is layered; each layer imports only the ones before it (``tests/test_layering.py``)::

    data     records, loaders, prompt templates, bundled data
    models   loading (GGUF cache), LoRA, the tiny test model
    train    batching, log-probs, the CUT loss, objectives, CUTConfig / CUTTrainer, DPO,
             KTO, GRPO, and train_objective: the one training entry point
    eval     token scores, detection quality, generation, metrics, comparisons
    viz      token views, plots, widgets, HTML reports, live loss plots
    online   constraint tasks, judges, the online loop
    cli      one module per ``cutkit`` command, and the demo

Every public name is listed once below, with the module that defines it, and imported lazily:
``import cutkit`` is cheap and pulls in torch and transformers only when a model-facing name is
first used.
"""

from __future__ import annotations

import importlib

from cutkit._version import __version__ as __version__

_PUBLIC: dict[str, tuple[str, ...]] = {
    # data
    "cutkit.data.records": ("JudgmentRecord", "RecordError"),
    "cutkit.data.loading": ("load_records", "load_records_with_report", "LoadReport"),
    "cutkit.data.templates": ("PromptTemplate", "get_template"),
    "cutkit.data.bundled": ("bundled_data_path", "load_bundled_or_path"),
    # models
    "cutkit.models.registry": ("DEFAULT_MODEL",),
    "cutkit.models.loading": ("load_model", "load_tokenizer"),
    "cutkit.models.lora": ("ModelSettings", "default_lora_config", "apply_lora"),
    "cutkit.models.tiny": ("tiny_model",),
    # training
    "cutkit.train.batching": ("build_examples", "CUTCollator"),
    "cutkit.train.attention": ("use_varlen_attention",),
    "cutkit.train.logprobs": ("label_logprobs",),
    "cutkit.train.losses": ("cut_loss", "CUTLossOutput"),
    "cutkit.train.objectives": ("OBJECTIVES", "build_objective_examples"),
    "cutkit.train.settings": ("TrainSettings", "CUTLevers"),
    "cutkit.train.config": ("CUTConfig",),
    "cutkit.train.trainer": ("CUTTrainer",),
    "cutkit.train.entry": ("train_objective", "check_training_records"),
    "cutkit.train.dpo": ("train_dpo",),
    "cutkit.train.kto": ("train_kto",),
    "cutkit.train.grpo": ("train_grpo",),
    # evaluation
    "cutkit.eval.tokens": ("score_tokens",),
    "cutkit.eval.detection": (
        "detection_report",
        "detection_quality",
        "push_balance",
        "record_groups",
    ),
    "cutkit.eval.generation": ("generate_responses", "generate_answers", "Generation"),
    "cutkit.eval.metrics": ("evaluate", "answer_correct", "read_figures", "TARGETS"),
    "cutkit.eval.intervals": ("wilson", "paired_bootstrap", "newcombe"),
    "cutkit.eval.comparison": (
        "compare",
        "CompareSettings",
        "summarize",
        "summary_markdown",
        "parse_arm",
    ),
    # views
    "cutkit.viz.tokenview": ("TokenView",),
    "cutkit.viz.widgets": ("TokenInspector",),
    "cutkit.viz.plots": ("plot_detection_report",),
    "cutkit.viz.report": ("write_report",),
    "cutkit.viz.callbacks": ("LiveLossPlot",),
    # online alignment
    "cutkit.online.tasks": ("Task",),
    "cutkit.online.checkers": ("satisfies",),
    "cutkit.online.generator": ("generate_tasks", "heldout_tasks", "word_limit_tasks"),
    "cutkit.online.judges.base": ("Judgment", "JudgeFailure"),
    "cutkit.online.judges.rule": ("RuleJudge",),
    "cutkit.online.judges.model": ("ModelJudge",),
    "cutkit.online.judges.http": ("OpenAICompatibleJudge",),
    "cutkit.online.judges.factory": ("make_judge",),
    "cutkit.online.config": ("OnlineConfig", "OnlineRun"),
    "cutkit.online.loop": ("run_online",),
    # the main job
    "cutkit.cli.demo": ("run_demo", "DemoSettings"),
}

_MODULE_OF = {name: module for module, names in _PUBLIC.items() for name in names}
__all__ = sorted([*_MODULE_OF, "__version__"])


def __getattr__(name: str):
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'cutkit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
