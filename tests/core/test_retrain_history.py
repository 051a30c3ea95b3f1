"""The retraining history the cooldown and the breaker read (``store.rollouts``), on SQLite
and Postgres: a run its controller never finished (``interrupted``) counts for neither."""

from __future__ import annotations

from loopml.store import Store


def test_an_interrupted_retraining_neither_fails_nor_resets_the_backoff(store_url: str) -> None:
    store = Store(store_url)

    def done(outcome: str, at: float) -> None:
        r = store.rollouts.request_retrain(
            "ep", trigger="decay", key=f"decay:{at}", reason="drift", requested_by="t", at=at,
            status="running",
        )  # fmt: skip
        store.rollouts.set_retrain(r["id"], status="done", outcome=outcome, finished_at=at + 1)

    done("not_better", 1)
    done("rolled_back", 2)
    done("interrupted", 3)
    outcomes = [r["outcome"] for r in store.rollouts.no_help_in_a_row("ep")]
    assert outcomes == ["rolled_back", "not_better"]  # the back-off still doubles twice
    done("error", 4)
    done("interrupted", 5)
    assert [r["outcome"] for r in store.rollouts.failures_in_a_row("ep")] == ["error"]
    assert store.rollouts.no_help_in_a_row("ep") == []  # a failure ends the streak
    store.close()
