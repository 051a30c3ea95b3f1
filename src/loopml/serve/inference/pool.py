"""The model pool: versions loaded from the registry, warmed, ready to predict.

A version is loaded through :func:`loopml.artifacts.model_loader.load_version` (sha256 of the
artifact, manifest signature when a public key is configured, the format's safe loader),
its signature is compiled into a :class:`~loopml.serve.wire.validation.Validator`, it gets its own
:class:`~loopml.serve.inference.batching.MicroBatcher`, and it is warmed with one predict on a row
synthesised from the signature before any traffic can reach it. Loading runs in a worker
thread, so the event loop keeps answering while a new version loads.

A batch that fails in the model is split: each request of the batch is predicted alone, so
one request's bad values never fail the requests it happened to be batched with.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from loopml.artifacts.model_loader import load_version
from loopml.artifacts.store import ArtifactStore
from loopml.data.signature import Signature
from loopml.errors import DataError, LoopmlError, UnavailableError
from loopml.evaluate.measure.predictions import predicts_argmax
from loopml.serve.http.refusals import tag
from loopml.serve.inference.batching import Lane, MicroBatcher
from loopml.serve.inference.cohorts import InFlight
from loopml.serve.inference.predictors import Prediction, accepts_array, batch_predictor
from loopml.serve.inference.request_rows import Batch
from loopml.serve.settings import Settings
from loopml.serve.wire.validation import Validator

MAX_PINNED = 4


class ModelFailure:
    """A request's result when the model raised on its rows (kept apart from real results)."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


def isolating_predictor(model: Any, validator: Validator, **fast: bool) -> Any:
    """``batch_predictor`` that, when a batch fails, retries its requests one by one and
    returns a :class:`ModelFailure` for each request that still fails."""
    inner = batch_predictor(model, validator, **fast)

    def predict(batches: list[Batch]) -> list[Prediction | ModelFailure]:
        try:
            return list(inner(batches))
        except Exception as exc:
            if len(batches) == 1:
                return [ModelFailure(exc)]
        out: list[Prediction | ModelFailure] = []
        for b in batches:
            try:
                out.extend(inner([b]))
            except Exception as exc:
                out.append(ModelFailure(exc))
        return out

    return predict


def warm_row(signature: Signature) -> dict[str, list[Any]]:
    """One plausible row from the signature: 0 for numbers, False, the first category."""
    row: dict[str, list[Any]] = {}
    for c in signature.columns:
        if c.kind == "number":
            row[c.name] = [0 if np.dtype(c.dtype).kind in "iu" else 0.0]
        elif c.kind == "bool":
            row[c.name] = [False]
        else:
            row[c.name] = [c.categories[0] if c.categories else ""]
    return row


def _probe_rows(signature: Signature, n: int = 32) -> dict[str, list[Any]]:
    """``n`` varied rows for the fast-path check: the warm row and standard-normal numbers."""
    rng = np.random.default_rng(0)
    row = warm_row(signature)
    out: dict[str, list[Any]] = {}
    for c in signature.columns:
        if c.kind == "number" and np.dtype(c.dtype).kind == "f":
            out[c.name] = row[c.name] + rng.normal(size=n - 1).round(3).tolist()
        else:
            out[c.name] = row[c.name] * n
    return out


def fast_predictor(model: Any, validator: Validator, plain: Any, signature: Signature) -> Any:
    """A faster predictor than ``plain`` (one ``predict_proba`` call; a NumPy array instead
    of a DataFrame; see :mod:`loopml.serve.inference.predictors`) when the model qualifies
    and gives the same predictions and probabilities as ``plain`` on probe rows; else
    ``None``."""
    fast = {
        "from_proba": predicts_argmax(model),
        "as_array": accepts_array(model, validator),
    }
    if not any(fast.values()):
        return None
    probe = [validator.validate(_probe_rows(signature))]
    want, candidate = plain(probe)[0], isolating_predictor(model, validator, **fast)
    got = candidate(probe)[0]
    if isinstance(got, ModelFailure) or isinstance(want, ModelFailure):
        return None
    same = np.array_equal(got[0], want[0]) and (
        (got[1] is None and want[1] is None)
        or (got[1] is not None and want[1] is not None and np.allclose(got[1], want[1]))
    )
    return candidate if same else None


@dataclass
class Loaded:
    """A loaded, warmed version."""

    id: int
    row: dict[str, Any]
    model: Any
    signature: Signature
    validator: Validator
    batcher: MicroBatcher[Batch, Any]
    load_seconds: float
    # what the validator accepts and how: versions with equal ``inputs`` validate a request
    # to the same batch (so a shadow can reuse the routed version's)
    inputs: str
    # shadow scoring: nobody waits on it, so it gathers for serve.shadow_batch_wait_ms into
    # larger, fewer calls (a pipeline's predict costs about the same for 1 or 256 rows)
    shadow_batcher: MicroBatcher[Batch, Any] | None = None

    @property
    def batch_sizes(self) -> Counter[int]:
        """Requests per predict call, routed and shadow together."""
        sizes = Counter(self.batcher.batch_sizes)
        if self.shadow_batcher is not None:
            sizes.update(self.shadow_batcher.batch_sizes)
        return sizes

    @property
    def has_proba(self) -> bool:
        return hasattr(self.model, "predict_proba")

    @property
    def names(self) -> frozenset[str]:
        """The signature's column names (the model's inputs)."""
        return self.validator.name_set


class ModelPool:
    """Loaded versions by id. ``ensure`` loads what is missing; ``retain`` drops the rest."""

    def __init__(self, settings: Settings, store: Any, in_flight: InFlight | None = None) -> None:
        self.settings = settings
        self.store = store
        self.in_flight = in_flight
        self.artifacts = ArtifactStore(settings.artifacts_root)
        self.loaded: dict[int, Loaded] = {}
        self._loading: dict[int, asyncio.Future[Loaded]] = {}
        # versions clients pinned outside the traffic table, newest last (kept loaded)
        self.pinned: dict[int, None] = {}
        # one lane per registered model: its versions (an endpoint's champion, canary and
        # shadows) predict one batch at a time (see MicroBatcher's ``lane``)
        self.lanes: dict[str, Lane] = {}

    def pin(self, version_id: int) -> None:
        """Keep ``version_id`` loaded for pinned requests (the oldest of more than
        ``MAX_PINNED`` is let go and unloaded at the next cleanup)."""
        self.pinned.pop(version_id, None)
        self.pinned[version_id] = None
        while len(self.pinned) > MAX_PINNED:
            self.pinned.pop(next(iter(self.pinned)))

    def get(self, version_id: int) -> Loaded:
        loaded = self.loaded.get(version_id)
        if loaded is None:  # internal: tables are installed only once their versions load
            raise UnavailableError(
                f"Version {version_id} is not loaded on this server yet. Retry in a moment.",
                field="version",
            )
        return loaded

    def load_sync(self, version_id: int) -> Loaded:
        """Fetch, verify, load and warm one version (blocking; runs in a worker thread)."""
        t0 = time.perf_counter()
        s = self.settings
        row = self.store.versions.get(version_id)
        if row["status"] in ("disabled", "rejected"):
            raise UnavailableError(
                f"Version {version_id} is {row['status']} and is not served.", field="version"
            )
        model = load_version(
            self.artifacts,
            row,
            trusted_types=s.trusted_types,
            trust_pickle=s.trust_pickle,
            public_key=s.public_key,
        )
        signature = Signature.from_dict(row["signature"])
        validator = Validator(
            signature,
            extra=s.extra_columns,  # type: ignore[arg-type]
            unseen=s.unseen_policy,  # type: ignore[arg-type]
            allow_nulls=s.allow_nulls,
        )
        predict = isolating_predictor(model, validator)
        if s.allow_nulls:
            # nulls only where the model takes them: refused before predicting, by column
            # and row, instead of failing in the model
            takes = null_takers(predict, validator, signature)
            validator = Validator(
                signature,
                extra=s.extra_columns,  # type: ignore[arg-type]
                unseen=s.unseen_policy,  # type: ignore[arg-type]
                allow_nulls=True,
                null_columns=takes,
            )
            predict = isolating_predictor(model, validator)
        warm = predict([validator.validate(warm_row(signature))])[0]
        if isinstance(warm, ModelFailure):
            err = warm.error
            raise UnavailableError(
                f"Version {version_id} loaded but failed its warm-up prediction "
                f"({type(err).__name__}: {str(err)[:200]}).",
                field="version",
            )
        predict = fast_predictor(model, validator, predict, signature) or predict
        lane = self.lanes.setdefault(str(row["model"]), Lane())
        batcher: MicroBatcher[Batch, Any] = MicroBatcher(
            predict,
            max_batch_size=s.serve.max_batch_size,
            max_wait_ms=s.serve.max_batch_wait_ms,
            inline_below_ms=s.serve.inline_below_ms,
            lane=lane,
            delay_ms=s.serve.batch_delay_ms,
            coming=self.in_flight.coming if self.in_flight is not None else None,
        )
        shadow = MicroBatcher(
            predict,
            max_batch_size=max(4 * s.serve.max_batch_size, 256),
            max_wait_ms=s.serve.shadow_batch_wait_ms,
            inline_below_ms=s.serve.inline_below_ms,
            patient=True,
            lane=lane,
        )
        inputs = repr((signature.columns, validator.extra, validator.unseen, validator.nullable))
        return Loaded(
            version_id,
            row,
            model,
            signature,
            validator,
            batcher,
            time.perf_counter() - t0,
            inputs,
            shadow,
        )

    async def ensure(self, version_ids: Iterable[int]) -> dict[int, BaseException]:
        """Load every version not loaded yet (concurrent loads of one version are shared).

        Returns the versions that failed, with their errors; the others are in ``loaded``.
        """
        wanted = [v for v in set(version_ids) if v not in self.loaded]
        failures: dict[int, BaseException] = {}
        for vid in wanted:
            fut = self._loading.get(vid)
            if fut is None:
                fut = asyncio.ensure_future(asyncio.to_thread(self.load_sync, vid))
                self._loading[vid] = fut
            try:
                loaded = await fut
            except Exception as exc:
                failures[vid] = exc
                continue
            finally:
                self._loading.pop(vid, None)
            self.loaded[vid] = loaded
        return failures

    def retain(self, keep: Iterable[int]) -> list[int]:
        """Unload every version not in ``keep``; returns the unloaded ids."""
        keep = set(keep)
        dropped = [v for v in self.loaded if v not in keep]
        for v in dropped:
            loaded = self.loaded.pop(v)
            loaded.batcher.close()
            if loaded.shadow_batcher is not None:
                loaded.shadow_batcher.close()
        return dropped

    def close(self) -> None:
        self.retain(())


def describe(exc: BaseException) -> str:
    """A one-line account of a load failure for the API and the decisions log."""
    if isinstance(exc, LoopmlError):
        return exc.message
    return f"{type(exc).__name__}: {str(exc)[:300]}"


def model_failed(version: int, endpoint: str, error: BaseException) -> DataError:
    """The 422 when the model raised on a request's rows: what it said, sanitised and capped."""
    return tag(
        DataError(
            f"The model (version {version}) could not predict on these rows: "
            f"{type(error).__name__}: {said_by_model(error)} Check the values against the "
            f"model's signature (GET /v2/models/{endpoint[:64]}).",
            field="rows",
        ),
        "model_error",
    )


def said_by_model(exc: BaseException, cap: int = 200) -> str:
    """A model's error message fit for a client: one line, printable, long quoted values
    and paths cut (they may echo the request or the server's files), at most ``cap``."""
    text = "".join(ch for ch in " ".join(str(exc).split()) if ch.isprintable())
    text = re.sub(r"(?:/[\w.@-]+){2,}/?", "<path>", text)
    text = re.sub(r"(['\"])([^'\"]{33,}?)\1", lambda m: f"{m[1]}{m[2][:30]}...{m[1]}", text)
    text = re.sub(r"\S{49,}", lambda m: m[0][:45] + "...", text)
    if len(text) > cap:
        text = text[: cap - 3] + "..."
    return text if text.endswith((".", "...")) else text + "."


def null_takers(predict: Any, validator: Validator, signature: Signature) -> frozenset[str]:
    """The columns (of those without nulls in training) in which the model takes a missing
    value: one probe with every such column null, then, if that fails, one per column."""
    candidates = [c.name for c in signature.columns if not c.nullable]
    if not candidates:
        return frozenset()

    def takes(names: list[str]) -> bool:
        row = warm_row(signature)
        for name in names:
            row[name] = [None]
        try:
            batch = validator.validate(row)
        except LoopmlError:
            return False
        return not isinstance(predict([batch])[0], ModelFailure)

    if takes(candidates):
        return frozenset(candidates)
    return frozenset(n for n in candidates if takes([n]))
