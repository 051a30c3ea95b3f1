"""Gates: the framework, the registry from ``gates:`` and each gate (data, metric, fairness, ...)."""
