"""The demo's traffic: survey years cut into pseudo-months, the simulated policy change, and
a client that sends each month through the HTTP API and posts its labels one window later."""

from __future__ import annotations

from typing import Any

PER_MONTH = 5000  # interviews replayed per month (a random sample of that year)


def months(frame: Any, year: int) -> list[tuple[tuple[int, int], Any]]:
    """A survey year as 12 pseudo-months of PER_MONTH random interviews each. The public file
    has no interview month and is ordered by household (group quarters together), so the
    rows are shuffled first: contiguous slices would look like drift that is not there."""
    import numpy as np

    order = np.random.default_rng(year).permutation(len(frame))
    idx = np.array_split(order, 12)
    return [((year, m + 1), frame.iloc[i[:PER_MONTH]]) for m, i in enumerate(idx)]


def policy_change(month: Any, rng: Any) -> Any:
    """Simulated: from 2018 most people aged 55-74 who were not working are now employed."""
    y = month["employed"].to_numpy().copy()
    age = month["AGEP"].to_numpy()
    flip = (age >= 55) & (age < 75) & (y == 0) & (rng.random(len(y)) < 0.8)
    y[flip] = 1
    return y


class Replay:
    """Sends survey months through the HTTP API and posts their labels one window later.

    Words: a *request* is one HTTP call (here of 200 rows); a *row* is one prediction."""

    def __init__(self, base: str, key: str, features: list[str]) -> None:
        import httpx

        self.http = httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=60
        )
        self.features = features
        self.pending: list[dict[str, Any]] = []
        self.sent = self.failed = self.rows = 0  # HTTP requests answered/refused; rows answered
        # per month: the rows sent, their true labels and what the server answered for each
        self.answered: list[tuple[tuple[int, int], Any, Any, Any]] = []

    def send(self, month: Any, labels: Any, *, ym: Any = None, batch: int = 200) -> None:
        import numpy as np

        rows = month[self.features].to_dict("records")
        answers = np.full(len(rows), -1)
        keep = np.zeros(len(rows), dtype=bool)
        ids = month["id"].astype(str).tolist()
        for i in range(0, len(rows), batch):
            r = self.http.post(
                "/v1/endpoints/employment/predict",
                json={"rows": rows[i : i + batch]},
                headers={"X-Entity-Key": ids[i]},
            )
            if r.status_code != 200:
                self.failed += 1
                continue
            self.sent += 1
            self.rows += len(rows[i : i + batch])
            answers[i : i + batch] = r.json()["predictions"]
            keep[i : i + batch] = True
            got = r.json()["request_ids"]
            self.pending += [
                {"request_id": q, "label": int(v)}
                for q, v in zip(got, labels[i : i + batch], strict=True)
            ]
        if ym is not None:
            self.answered.append((ym, month[self.features][keep], labels[keep], answers[keep]))

    def post_labels(self) -> None:
        if self.pending:
            r = self.http.post("/v1/labels", json={"labels": self.pending})
            r.raise_for_status()
            self.pending = []
