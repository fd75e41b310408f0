"""Hyperparameter sweeps and many seeds on Ray (the ``sweep`` extra: ``budgetgym[sweep]``).

* :mod:`~budgetgym.agents.sweeps.space` — the search-space YAML (dotted config paths to
  distributions), checked against the config schema, and the objective.
* :mod:`~budgetgym.agents.sweeps.trial` — one trial: a normal budgetgym run that reports each
  validation to Ray Tune with a checkpoint, and resumes from it after a failure.
* :mod:`~budgetgym.agents.sweeps.tuner` — the sweep: Ray Tune with Optuna's TPE
  (``OptunaSearch``), ASHA on the objective, fault tolerance, ``--resume``, the live table.
* :mod:`~budgetgym.agents.sweeps.results` — the results table, plots and the best config.
* :mod:`~budgetgym.agents.sweeps.cluster` — connecting to Ray and running seeds as Ray tasks.

Only :mod:`~budgetgym.agents.sweeps.space` imports without Ray.
"""
