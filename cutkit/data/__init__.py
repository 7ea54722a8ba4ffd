"""Data: judgment records and everything that turns files into them (the first layer).

- :mod:`~cutkit.data.records`: ``JudgmentRecord``, positive / negative routing, junk rules and
  ``RecordError`` (file, record, field, fix);
- :mod:`~cutkit.data.loading`: ``load_records`` and the ``LoadReport``; it reads sources with
  :mod:`~cutkit.data.sources`, fields with :mod:`~cutkit.data.fields` and converts each known
  format (CUT, Shepherd, summarization critiques, UltraFeedback) in :mod:`~cutkit.data.formats`;
- :mod:`~cutkit.data.templates`: the plain and judged prompts (``alpaca``, ``chat``);
- :mod:`~cutkit.data.bundled`: paths of the judgment data shipped with cutkit.
"""
