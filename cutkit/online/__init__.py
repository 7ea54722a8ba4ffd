"""Online alignment: instructions with checkable constraints, judges, and the round loop.

- :mod:`~cutkit.online.kinds`: the constraint kinds (check, critique, instruction phrasings and
  parameters of each), registered in one place;
- :mod:`~cutkit.online.tasks`: ``Constraint`` and ``Task``; :mod:`~cutkit.online.checkers`:
  response -> violations; :mod:`~cutkit.online.generator`: seeded task generation;
  :mod:`~cutkit.online.ifeval`: IFEval's reference checkers as a second judge (extra ``ifeval``);
- :mod:`~cutkit.online.judges`: who writes the judgments (rule, local model, API);
- :mod:`~cutkit.online.config`: the run's settings; :mod:`~cutkit.online.loop`: the rounds, with
  :mod:`~cutkit.online.rounds` (judged records, held-out metrics),
  :mod:`~cutkit.online.training` (a round's LoRA), :mod:`~cutkit.online.resume` and
  :mod:`~cutkit.online.rundir` (the run directory).
"""
