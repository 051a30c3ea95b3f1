"""The closed loop: triggers, retraining, rollouts with guards and rollback, retirement.

``Controller(cfg, store).reconcile_once()`` is one pass (``loopml control --once``);
``run_forever(stop_event)`` is what ``loopml serve`` runs in a background thread.
``request_retrain(store, endpoint, actor=...)`` queues a manual retraining;
``start_rollout(cfg, store, endpoint, version, actor=...)`` starts a guarded rollout by hand.
"""

from loopml.control.controller import Controller, request_retrain, start_rollout

__all__ = ["Controller", "request_retrain", "start_rollout"]
