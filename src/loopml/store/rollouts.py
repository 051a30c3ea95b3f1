"""The controller's state: rollouts (shadow -> canary steps -> champion) and retraining requests.

``store.rollouts`` holds both, because the controller reads them together: at most one active
rollout per endpoint (state ``shadow`` or ``canary``), and the retraining history from which
cooldown, the daily budget and the breaker are computed. Rollout updates name the state and
step they read (optimistic, like versions and endpoints), so two writers never both advance a
rollout. Times are the caller's clock (the controller may run on a test clock).
"""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Connection, Engine

from loopml.errors import ConflictError, NotFoundError
from loopml.store.rows import ACTIVE_STATES, RetrainRow, RolloutRow, RolloutState
from loopml.store.tables import retrains, rollouts
from loopml.store.util import row_dict

# plain strings for queries (a driver need not know the enum)
ACTIVE = tuple(s.value for s in ACTIVE_STATES)
# outcomes that count towards the breaker: the retraining itself failed (it crashed, or gates
# other than the champion comparison rejected its candidate: a data or code problem)
FAILED_OUTCOMES = ("rejected", "error")
# outcomes that mean "a fresh model does not help on recent data": they back the cooldown off
NO_HELP = ("not_better", "rolled_back", "inconclusive")

RO = rollouts.c
RT = retrains.c


def _rollout(r: Any) -> RolloutRow:
    """A rollout row with its state as a ``RolloutState`` (stored as the same string)."""
    row = cast(RolloutRow, row_dict(r))
    row["state"] = RolloutState(row["state"])
    return row


class Rollouts:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # ------------------------------------------------------------------ rollouts
    def start(self, **fields: Any) -> RolloutRow:
        """``open`` in a transaction of its own; returns the new rollout."""
        with self.engine.begin() as conn:
            rid = self.open(conn, **fields)
        return self.get(rid)

    @staticmethod
    def open(
        conn: Connection,
        *,
        endpoint: str,
        candidate_id: int,
        champion_id: int | None,
        at: float,
        retrain_id: int | None = None,
        evidence: dict[str, Any] | None = None,
    ) -> int:
        """A new rollout in the shadow state, in the caller's transaction (with the traffic
        change that mirrors the candidate); refuses a second active one on the endpoint.
        Returns the rollout's id."""
        busy = conn.execute(
            select(RO.id).where(RO.endpoint == endpoint, RO.state.in_(ACTIVE))
        ).scalar()
        if busy is not None:
            raise ConflictError(
                f"Endpoint {endpoint!r} already has rollout {busy} in progress; "
                "wait for it to finish or roll it back.",
                field="endpoint",
            )
        rid = conn.execute(
            insert(rollouts).values(
                endpoint=endpoint,
                candidate_id=candidate_id,
                champion_id=champion_id,
                retrain_id=retrain_id,
                state=RolloutState.SHADOW.value,
                step=-1,
                started_at=at,
                step_started_at=at,
                cursor=at,
                breaches=0,
                judged=0,
                evidence=evidence or {},
                updated_at=at,
            )
        ).inserted_primary_key[0]  # type: ignore[index]
        return int(rid)

    def get(self, rollout_id: int) -> RolloutRow:
        with self.engine.connect() as conn:
            r = conn.execute(select(rollouts).where(RO.id == rollout_id)).first()
        if r is None:
            raise NotFoundError(f"No rollout {rollout_id}.", field="rollout")
        return _rollout(r)

    def active(self, endpoint: str | None = None) -> list[RolloutRow]:
        """Rollouts in progress (shadow or canary), oldest first."""
        q = select(rollouts).where(RO.state.in_(ACTIVE)).order_by(RO.id)
        if endpoint is not None:
            q = q.where(RO.endpoint == endpoint)
        with self.engine.connect() as conn:
            return [_rollout(r) for r in conn.execute(q)]

    def update(self, rollout: RolloutRow, *, at: float, **values: Any) -> RolloutRow:
        """Change a rollout if it is still in the state and step it was read in."""
        with self.engine.begin() as conn:
            self.write(conn, rollout, at=at, **values)
        return self.get(rollout["id"])

    @staticmethod
    def write(conn: Connection, rollout: RolloutRow, *, at: float, **values: Any) -> None:
        """``update`` in the caller's transaction (with the traffic change it goes with): a
        rollout changed since it was read raises ``ConflictError``, which undoes both."""
        if "state" in values:  # a RolloutState or its string; stored as the string
            values["state"] = RolloutState(values["state"]).value
        res = conn.execute(
            update(rollouts)
            .where(
                RO.id == rollout["id"],
                RO.state == str(rollout["state"]),
                RO.step == rollout["step"],
                RO.updated_at == rollout["updated_at"],
            )
            .values(updated_at=max(at, rollout["updated_at"] + 1e-6), **values)
        )
        if res.rowcount != 1:
            raise ConflictError(
                f"Rollout {rollout['id']} changed while it was being updated; nothing was changed.",
                field="rollout",
            )

    def finish(self, rollout: RolloutRow, state: RolloutState, reason: str, at: float) -> None:
        """End a rollout whose traffic already changed (or was changed by someone else)."""
        with self.engine.begin() as conn:
            self.close(conn, rollout, state, reason, at)

    @classmethod
    def close(
        cls, conn: Connection, rollout: RolloutRow, state: RolloutState, reason: str, at: float
    ) -> None:
        """End a rollout with ``state`` (and its retraining request with that outcome), in the
        caller's transaction."""
        cls.write(conn, rollout, at=at, state=state, finished_at=at, reason=reason)
        if rollout["retrain_id"] is not None:
            conn.execute(
                update(retrains)
                .where(RT.id == rollout["retrain_id"])
                .values(outcome=RolloutState(state).value, finished_at=at)
            )

    # ------------------------------------------------------------------ retrains
    def request_retrain(
        self,
        endpoint: str,
        *,
        trigger: str,
        key: str,
        reason: str,
        requested_by: str,
        at: float,
        status: str = "pending",
        evidence: dict[str, Any] | None = None,
    ) -> RetrainRow:
        with self.engine.begin() as conn:
            rid = conn.execute(
                insert(retrains).values(
                    endpoint=endpoint,
                    trigger=trigger,
                    key=key,
                    status=status,
                    reason=reason,
                    evidence=evidence or {},
                    requested_by=requested_by,
                    requested_at=at,
                )
            ).inserted_primary_key[0]  # type: ignore[index]
        return self.retrain(int(rid))

    def retrain(self, retrain_id: int) -> RetrainRow:
        with self.engine.connect() as conn:
            r = conn.execute(select(retrains).where(RT.id == retrain_id)).first()
        if r is None:
            raise NotFoundError(f"No retraining request {retrain_id}.", field="retrain")
        return cast(RetrainRow, row_dict(r))

    def retrains(
        self,
        endpoint: str,
        *,
        status: str | None = None,
        trigger: str | None = None,
        key: str | None = None,
        since: float | None = None,
        limit: int = 200,
    ) -> list[RetrainRow]:
        """An endpoint's retraining requests, newest first."""
        q = select(retrains).where(RT.endpoint == endpoint).order_by(RT.id.desc()).limit(limit)
        for col, val in ((RT.status, status), (RT.trigger, trigger), (RT.key, key)):
            if val is not None:
                q = q.where(col == val)
        if since is not None:
            q = q.where(RT.requested_at >= since)
        with self.engine.connect() as conn:
            return [cast(RetrainRow, row_dict(r)) for r in conn.execute(q)]

    def running(self) -> list[RetrainRow]:
        """Retraining runs in progress on every endpoint, oldest first (a controller that
        takes over from a dead one finds the runs it left here)."""
        with self.engine.connect() as conn:
            q = select(retrains).where(RT.status == "running").order_by(RT.id)
            return [cast(RetrainRow, row_dict(r)) for r in conn.execute(q)]

    def started_since(self, endpoint: str, since: float) -> int:
        """Retraining runs started at or after ``since`` (the daily budget)."""
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    select(func.count())
                    .select_from(retrains)
                    .where(
                        RT.endpoint == endpoint, RT.started_at.is_not(None), RT.started_at >= since
                    )
                ).scalar_one()
            )

    def last_started(self, endpoint: str) -> RetrainRow | None:
        with self.engine.connect() as conn:
            r = conn.execute(
                select(retrains)
                .where(RT.endpoint == endpoint, RT.started_at.is_not(None))
                .order_by(RT.started_at.desc(), RT.id.desc())
                .limit(1)
            ).first()
        return None if r is None else cast(RetrainRow, row_dict(r))

    def failures_in_a_row(self, endpoint: str) -> list[RetrainRow]:
        """The newest finished retrains that failed (``FAILED_OUTCOMES``), up to the last
        promotion."""
        return self._since_promotion(endpoint, FAILED_OUTCOMES)

    def no_help_in_a_row(self, endpoint: str) -> list[RetrainRow]:
        """The newest finished retrains whose candidate did not help (``NO_HELP``), up to the
        last promotion or failure (an interrupted one is skipped: it says nothing either way)."""
        out = []
        for r in self.retrains(endpoint, status="done", limit=100):
            if r["outcome"] == "interrupted":
                continue
            if r["outcome"] not in NO_HELP:
                break
            out.append(r)
        return out

    def _since_promotion(self, endpoint: str, outcomes: tuple[str, ...]) -> list[RetrainRow]:
        out = []
        for r in self.retrains(endpoint, status="done", limit=100):
            if r["outcome"] == "promoted":
                break
            if r["outcome"] in outcomes:
                out.append(r)
        return out

    def set_retrain(self, retrain_id: int, **values: Any) -> RetrainRow:
        with self.engine.begin() as conn:
            conn.execute(update(retrains).where(RT.id == retrain_id).values(**values))
        return self.retrain(retrain_id)

    def claim_retrain(self, retrain_id: int, *, at: float) -> bool:
        """Move a pending request to running; False if someone else took it first."""
        with self.engine.begin() as conn:
            res = conn.execute(
                update(retrains)
                .where(RT.id == retrain_id, RT.status == "pending")
                .values(status="running", started_at=at)
            )
        return res.rowcount == 1

    # last in the class, so that ``list[...]`` above still means the builtin
    def list(self, *, endpoint: str | None = None, limit: int = 100) -> list[RolloutRow]:
        q = select(rollouts).order_by(RO.id.desc()).limit(limit)
        if endpoint is not None:
            q = q.where(RO.endpoint == endpoint)
        with self.engine.connect() as conn:
            return [_rollout(r) for r in conn.execute(q)]
