"""One study and its workers: the request (``request``), a trial as a pure evaluation (``trials``),
the Optuna study around them (``session``), worker processes (``workers``), and what observes them —
MLflow runs (``tracking``), reports and alternatives."""
