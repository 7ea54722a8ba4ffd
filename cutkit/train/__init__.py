"""Training: from records to a trained LoRA with CUT or a baseline.

- :mod:`~cutkit.train.batching`: tokenized two-context examples, collation and packing;
- :mod:`~cutkit.train.attention`: varlen attention for packed batches;
- :mod:`~cutkit.train.logprobs`: log-probs of the label tokens through the output layer in chunks;
- :mod:`~cutkit.train.vocabulary`: the choices of the settings (objectives, detectors, ...) and
  the reasons of their numeric ranges, declared once (a leaf: it imports nothing);
- :mod:`~cutkit.train.detection`: the detection rule (which tokens a judgment flags), written once;
- :mod:`~cutkit.train.losses`: ``cut_loss`` and its push statistics, pure functions;
- :mod:`~cutkit.train.objectives`: the baselines as example builders and loss switches;
- :mod:`~cutkit.train.settings`: the one declaration of every shared training setting
  (``SETTINGS``: default, help text, rule), the entry points' named presets
  (``PRESET_OVERRIDES``) and the settings every entry point shares (``TrainSettings``,
  ``CUTLevers``);
- :mod:`~cutkit.train.config` / :mod:`~cutkit.train.trainer`: ``CUTConfig`` and ``CUTTrainer``;
- :mod:`~cutkit.train.dpo`: DPO through TRL on (refinement, response) pairs.
"""
