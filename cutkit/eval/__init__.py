"""Evaluation: what a model does with judgments, before and after training.

- :mod:`~cutkit.eval.scoring`: per-token log-probs of examples in both contexts;
- :mod:`~cutkit.eval.tokens`: ``score_tokens``, one row per response token with its log ratio and
  flag;
- :mod:`~cutkit.eval.detection`: detection reports, AUC against gold spans, the push balance;
- :mod:`~cutkit.eval.generation` / :mod:`~cutkit.eval.degeneration`: greedy answers with their
  finish status, and empty / truncated / repetitive answers;
- :mod:`~cutkit.eval.metrics`: ``evaluate`` and ``read_figures``;
- :mod:`~cutkit.eval.comparison`: ``compare`` objectives over seeds with intervals.
"""
