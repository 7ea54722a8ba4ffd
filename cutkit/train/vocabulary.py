"""The words training settings take, and the reasons behind the numeric ranges: declared once.

Every other module (the config, the loss, the settings of each entry point, the comparison, the
online loop, the command-line help) imports its choices from here, so a new objective or lever
value is added in one place. This module is a leaf: it imports nothing from cutkit (and nothing
at all), so anything in the package may import it without making a cycle.

>>> "cut" in OBJECTIVES and "dpo" in TRL_OBJECTIVES
True
"""

from __future__ import annotations

OBJECTIVES = ("cut", "sft", "hindsight", "forward", "ilf", "ul_all", "self_distill")
"""The objectives :class:`~cutkit.train.config.CUTConfig` trains (equations in
:mod:`cutkit.train.objectives`, docs/method.md §8):

- ``cut``: Contrastive Unlikelihood Training (Align-P, Align-N and the Misalign term);
- ``sft``: likelihood of the positive responses only;
- ``hindsight``: CUT without the Misalign term (Chain-of-Hindsight style);
- ``forward``: forward prediction: the response, then the judgment as a continuation;
- ``ilf``: imitation learning from language feedback (likelihood of the refinements);
- ``ul_all``: CUT without detection: every token of a bad response is unlikelihood-trained;
- ``self_distill``: the plain context distilled from the judged one on the negatives."""

TRL_OBJECTIVES = ("dpo", "kto", "grpo")
"""Objectives trained through TRL's own trainers, not CUTConfig (:mod:`cutkit.train.dpo`,
:mod:`cutkit.train.kto`, :mod:`cutkit.train.grpo`):

- ``dpo``: Direct Preference Optimization, the refinement preferred over the response;
- ``kto``: Kahneman-Tversky Optimization, positives desirable and negatives undesirable;
- ``grpo``: Group Relative Policy Optimization from a verifiable reward on the model's own
  samples (needs the records' tasks and a verifier; ignores their responses and judgments)."""

ONLINE_OBJECTIVES = ("cut", "sft", "hindsight", "self_distill", "kto")
"""Objectives the online loop trains each round with (:class:`~cutkit.online.config.OnlineConfig`),
from :data:`OBJECTIVES` and :data:`TRL_OBJECTIVES`: ``cut``, ``hindsight`` and ``self_distill`` on
the judged answers, ``sft`` on the responses the judge accepted, ``kto`` with accepted responses
desirable and rejected ones undesirable (through TRL)."""

LEARNS_FROM_NEGATIVES = ("cut", "ul_all", "hindsight", "ilf", "dpo", "kto", "self_distill")
"""Objectives that need negative (judged) records: ``cut``, ``ul_all``, ``hindsight`` and
``self_distill`` train on the negatives and their judgments, ``ilf`` and ``dpo`` on the negatives'
refinements, ``kto`` takes the negatives as undesirable (``sft`` and ``forward`` can train on
positives alone)."""

DETECTORS = ("model", "spans")
"""Where the flagged tokens come from:

- ``model``: the model's judged/plain ratio (the paper);
- ``spans``: the records' gold ``error_spans`` (oracle detection)."""

UNFLAGGED = ("mle", "ignore")
"""What the Misalign term does with an unflagged token of a bad response:

- ``mle``: likelihood in the plain prompt (the paper);
- ``ignore``: nothing (it contributes 0 but still counts in the denominators)."""

NORMALIZATIONS = ("official", "paper", "token")
"""How the loss terms are averaged (:mod:`cutkit.train.losses`):

- ``official``: the released code, per micro-batch (not invariant to gradient accumulation);
- ``paper``: per example, then over the examples (arXiv v4);
- ``token``: every per-token term over the number of response tokens."""

UL_WEIGHT_WHY = (
    "alpha weighs the unlikelihood term on flagged tokens; a negative alpha rewards the very "
    "tokens the judgment criticises and nan or inf turns every gradient into NaN (0 switches the "
    "term off; the paper uses 1.0 online, 0.5 on Shepherd)"
)
"""Why ``ul_weight`` (alpha) must be finite and >= 0."""
GAMMA_WHY = (
    "the dynamic weight is alpha * p_judged^gamma with p_judged <= 1; a negative gamma weighs "
    "improbable tokens up without bound and nan or inf poisons the loss (0 = constant alpha)"
)
"""Why ``gamma`` must be finite and >= 0."""
DISTILL_WEIGHT_WHY = (
    "the weight of the self-distillation divergence against the likelihood terms: a negative "
    "weight would push the plain prompt away from the judged one, nan or inf wrecks the weights"
)
"""Why ``distill_weight`` must be finite and >= 0."""
LR_WHY = "0 trains nothing and a negative, nan or inf step wrecks the weights (paper: 4e-4)"
"""Why the learning rate must be finite and > 0."""
RATIO_WHY = "positives kept per negative (paper: 0.25); None keeps them all"
"""Why ``align_p_ratio`` must be finite and >= 0 (or None)."""
COUNT_WHY = "a count of records, micro-batches or rows"
"""Why a batch size, accumulation or chunk size must be a whole number >= 1."""
THRESHOLD_WHY = (
    "a token is flagged when p_judged > lambda * p_plain, so lambda < 1 would flag tokens the "
    "judgment made less likely and inf flags nothing; pass e.g. 1.1 (the paper's online "
    "setting) or 1.2 (Shepherd)"
)
"""Why lambda (``threshold``) must be finite and >= 1
(:func:`cutkit.train.detection.check_threshold`)."""

DEFAULT_TEMPLATE = "alpaca"
"""The prompt template of ``CUTConfig`` (paper-exact) and of every training, scoring and
generation function that takes ``template``."""
DEFAULT_THRESHOLD = 1.1
"""lambda of ``CUTConfig`` (the paper's online setting) and of every function that flags tokens."""
DEFAULT_MAX_LENGTH = 2048
"""The context length of ``CUTConfig`` (the paper's cutoff) and of every function that lays out
or scores contexts."""
