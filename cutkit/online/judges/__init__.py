"""Judges: :mod:`~cutkit.online.judges.base` (results and the ``Judge`` protocol),
:mod:`~cutkit.online.judges.rule`, :mod:`~cutkit.online.judges.model`,
:mod:`~cutkit.online.judges.http` (the judges) and :mod:`~cutkit.online.judges.factory` (specs
like ``model:PATH`` -> judges)."""
