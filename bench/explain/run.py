"""Explanations of the employment model (the example's one-hot + histogram gradient boosting):
loopml against calling ``shap`` directly the way its documentation shows, in one run.

1. Exact (TreeSHAP): rows explained per second by ``loopml.evaluate.xai.explain.Explainer``
   (transform, TreeSHAP, one-hot levels summed back to the user's columns) and by
   ``shap.TreeExplainer(model)(X_encoded)`` on the pipeline's encoded rows, with the numbers
   checked equal to 1e-6 so the timing is of equal work.
2. Model-agnostic: rows per second of loopml's permutation method (background from the
   version's reference profile, the stated budget) and of ``shap.PermutationExplainer`` on the
   model's probability with a background DataFrame (shap's docs for a black-box model).
3. Latency: p50 / p90 of a one-row ``POST /v1/endpoints/employment/explain`` against a real
   ``loopml serve`` pinned to one core, beside one-row ``/predict`` on the same server.

Run: ``.venv/bin/python bench/explain/run.py [--quick]``. Needs ``loopml[explain]`` and the
employment data (``make demo`` installs it).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

warnings.filterwarnings("ignore")
os.environ.setdefault("OMP_NUM_THREADS", "1")


def _rate(fn, n_rows: int, repeat: int = 1) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return n_rows / best, out


def train(root: Path) -> tuple[object, object, dict]:
    """The employment project trained by ``loopml run``; (cfg, store, version row)."""
    from loopml.config import load_config
    from loopml.examples.employment import write_project
    from loopml.store import Store
    from loopml.train import run

    write_project(root)
    cfg = load_config(root)
    store = Store(cfg.store_url)
    result = run(cfg, store=store)
    assert result.version is not None, "the employment model was not registered"
    return cfg, store, result.version


def exact(model, X, rows: int) -> None:
    import shap

    from loopml.evaluate.xai.explain import Explainer

    feats = list(X.columns)
    sample = X.iloc[:rows]
    ours = Explainer(model, features=feats)
    ours.explain(sample.iloc[:2])  # set-up (tree conversion) is not per row
    r_ours, res = _rate(lambda: ours.explain(sample), rows, repeat=3)
    # shap's documented way for a pipeline: explain the final estimator on the encoded rows
    enc, est = model[:-1], model[-1]
    explainer = shap.TreeExplainer(est)
    r_shap, sv = _rate(lambda: explainer(enc.transform(sample)), rows, repeat=3)
    own = np.asarray(sv.values).sum(axis=1) + np.ravel(sv.base_values)
    assert np.allclose(own, res.values, atol=1e-6), "loopml and shap disagree"
    print(f"exact rows={rows:,} ({res.method}, {res.output}, {len(feats)} columns)")
    print(f"  loopml Explainer (grouped to columns): {r_ours:10,.0f} rows/s")
    print(f"  shap.TreeExplainer on encoded rows:    {r_shap:10,.0f} rows/s")
    print(f"  ratio loopml/shap: {r_ours / r_shap:.2f}")


def agnostic(cfg, version, model, X, rows: int) -> None:
    import shap

    from loopml.artifacts.store import ArtifactStore
    from loopml.evaluate.xai.background import version_explainer
    from loopml.evaluate.xai.explain import Budget

    budget = Budget(background_rows=100, max_evals=None)
    ours = version_explainer(
        ArtifactStore(cfg.artifacts_root), version, model, method="permutation", budget=budget
    )
    sample = X.iloc[:rows]
    ours.explain(sample.iloc[:1])
    r_ours, res = _rate(lambda: ours.explain(sample), rows)
    print(f"model-agnostic rows={rows} ({res.notes[-1]})")
    print(f"  loopml permutation (reference-profile background): {r_ours:8.2f} rows/s")
    background = X.sample(100, random_state=0)

    def f(frame):
        return model.predict_proba(frame)[:, 1]

    try:
        explainer = shap.PermutationExplainer(f, background)
        r_shap, _ = _rate(lambda: explainer(sample, max_evals=500, silent=True), rows)
        print(f"  shap.PermutationExplainer(f, background DataFrame): {r_shap:8.2f} rows/s")
        print(f"  ratio loopml/shap: {r_ours / r_shap:.2f}")
    except Exception as exc:  # shap's maskers take numbers; the employment rows hold text
        print(f"  shap.PermutationExplainer on the raw rows failed: {type(exc).__name__}: {exc}")
        # what a user has to write instead: code the text columns, decode them for the model
        from loopml.evaluate.xai.coded import CodedModel

        coded = CodedModel(model, list(X.columns), 1)
        bg = coded.learn(background)
        explainer = shap.PermutationExplainer(coded, shap.maskers.Independent(bg, len(bg)))
        r_shap, _ = _rate(lambda: explainer(coded.encode(sample), max_evals=500, silent=True), rows)
        print(f"  shap.PermutationExplainer on ordinal-coded rows:   {r_shap:8.2f} rows/s")
        print(f"  ratio loopml/shap: {r_ours / r_shap:.2f}")


def latency(root: Path, X, n: int) -> None:
    import httpx

    from loopml.server import free_port

    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    cmd = [sys.executable, "-m", "loopml.cli", "-c", str(root), "serve", "--no-auth"]
    # the server's log goes to a file: a pipe nobody reads fills up (the access log writes a
    # line per request) and blocks the server
    errors = open(root / "serve.log", "wb")  # noqa: SIM115 - closed in the finally below
    proc = subprocess.Popen(
        [*cmd, "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=errors,
        env=env,
        preexec_fn=lambda: os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            try:
                if httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.time() < deadline, (root / "serve.log").read_text()[
                -2000:
            ]
            time.sleep(0.2)
        rows = [
            {k: (None if v != v else v) for k, v in r.items()}
            for r in X.iloc[:n].to_dict("records")
        ]
        with httpx.Client(base_url=url, timeout=30) as c:
            for path in ("predict", "explain"):
                times = []
                for i, row in enumerate(rows):
                    t = time.perf_counter()
                    r = c.post(f"/v1/endpoints/employment/{path}", json={"rows": [row]})
                    dt = (time.perf_counter() - t) * 1000
                    assert r.status_code == 200, r.text
                    if i >= 5:  # the first requests build the explainer
                        times.append(dt)
                p50, p90 = np.percentile(times, [50, 90])
                goal = " (goal <= 20 ms)" if path == "explain" else ""
                print(f"  one-row /{path}: p50 {p50:6.2f} ms, p90 {p90:6.2f} ms{goal}")
    finally:
        proc.terminate()
        proc.wait(30)
        errors.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true", help="fewer rows")
    args = p.parse_args()
    from loopml.artifacts.model_loader import load_version
    from loopml.artifacts.store import ArtifactStore
    from loopml.data.signature import Signature

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "employment"
        t = time.perf_counter()
        cfg, store, version = train(root)
        print(f"trained and registered version {version['id']} in {time.perf_counter() - t:.0f} s")
        store.endpoints.deploy("employment", version, actor="bench", reason="bench/explain")
        model = load_version(ArtifactStore(cfg.artifacts_root), version)
        import pandas as pd

        X = pd.read_parquet(root / "data" / "employment_2016.parquet")
        X = X[Signature.from_dict(version["signature"]).names].sample(frac=1.0, random_state=0)
        print(f"cpu affinity: {sorted(os.sched_getaffinity(0))}; load {os.getloadavg()[0]:.1f}")
        exact(model, X, 1000 if args.quick else 5000)
        agnostic(cfg, version, model, X, 3 if args.quick else 10)
        print("latency (loopml serve on one core, sequential requests, loopback HTTP):")
        latency(root, X, 60 if args.quick else 300)
        store.close()


if __name__ == "__main__":
    main()
