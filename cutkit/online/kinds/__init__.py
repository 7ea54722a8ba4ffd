"""Constraint kinds: what each checkable requirement means, how it is asked for and judged.

Kinds (``Constraint.params`` in brackets):

- ``lowercase``: no uppercase letter anywhere;
- ``max_words`` (``n``): at most n whitespace-separated words;
- ``include_word`` / ``exclude_word`` (``word``): the word occurs / does not occur (whole word,
  case-insensitive);
- ``no_commas``: no ``,`` anywhere;
- ``end_with`` (``phrase``): the response, trailing whitespace removed, ends with the exact phrase;
- ``numbered_list`` (``n``): lines ``1. ...`` (or ``1) ...``) numbered 1..n in order, exactly n;
- ``json_keys`` (``keys``): a single JSON object with exactly these keys and nothing around it
  (one enclosing Markdown code fence is tolerated);
- ``arithmetic`` (``expression``, ``answer``): the response is just the number ``answer``
  (an integer, optionally followed by a full stop).

Modules: :mod:`~cutkit.online.kinds.violation` (what a check reports),
:mod:`~cutkit.online.kinds.checks` (one check per kind), :mod:`~cutkit.online.kinds.critiques`
(the rule judge's sentences per kind), :mod:`~cutkit.online.kinds.instructions` (parameter
samplers) and :mod:`~cutkit.online.kinds.registry` (one :class:`ConstraintKind` entry per kind,
where everything is looked up).
"""
