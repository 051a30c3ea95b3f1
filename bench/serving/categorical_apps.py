"""What the categorical case serves: the pipeline, how each server's copy is fitted and saved,
and the two floors' apps (sources written to files and run under uvicorn by ``categorical.py``).
"""

STRINGS = {"workclass": 7, "occupation": 14, "relationship": 6, "state": 50}
NUMBERS = ("age", "hours", "capital", "education")
FEATURES = (*STRINGS, *NUMBERS)
ONE_FLOOR = "batching floor (1 model)"
CASE_FLOOR = "batching floor (champion + 10% canary + shadow)"
SOLO = "loopml (champion only)"
SOLO_ENDPOINT = "benchcat_solo"

# The same pipeline in every venv: fitted from the CSV, saved the way each server loads it.
PIPELINE = f"""
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

STRINGS = {list(STRINGS)!r}
NUMBERS = {list(NUMBERS)!r}


def pipeline(max_iter=100, seed=0):
    pre = ColumnTransformer([
        ("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False), list(STRINGS)),
        ("num", StandardScaler(), list(NUMBERS)),
    ])
    return make_pipeline(pre, HistGradientBoostingClassifier(max_iter=max_iter, random_state=seed))
"""

TRAIN_PY = (
    PIPELINE
    + """

def train(X, y, params, seed=0):
    return pipeline(params.get("max_iter", 100), params.get("seed", seed)).fit(X[STRINGS + NUMBERS], y)
"""
)

LOOPML_YAML = """\
project: benchcat
data: {train: train.parquet, target: label, id: id}
model: {name: benchcat, train: train.py:train}
gates: {champion: {blocking: false}}
deploy: {endpoint: benchcat}
"""

FIT_SAVE = (
    PIPELINE
    + """
import sys, joblib, pandas as pd
frame = pd.read_csv(sys.argv[1], dtype={c: str for c in STRINGS})
X, y = frame[STRINGS + NUMBERS], frame["label"].to_numpy()
model = pipeline(seed=int(sys.argv[4]) if len(sys.argv) > 4 else 0).fit(X, y)
if sys.argv[2] == "mlflow":
    import mlflow.sklearn
    from mlflow.models import infer_signature
    mlflow.sklearn.save_model(
        model, sys.argv[3], signature=infer_signature(X, y),
        skops_trusted_types=["sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"],
    )
else:
    joblib.dump(model, sys.argv[3])
"""
)

FLOOR_COMMON = """
import asyncio, os, random, joblib, numpy as np, orjson, pandas as pd
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

model = joblib.load(os.environ["FLOOR_MODEL"])
names = list(model.feature_names_in_)
classes = model.classes_.tolist()
stats = {"calls": 0, "rows": 0}


def call(which, rows):  # which's probabilities for rows, counted in /stats
    stats["calls"] += 1
    stats["rows"] += len(rows)
    return which.predict_proba(frame(rows))


def frame(rows):
    return pd.DataFrame({n: [r[n] for r in rows] for n in names}, columns=names)


def answer(proba):
    out = {"predictions": [classes[i] for i in proba.argmax(axis=1)], "probabilities": proba}
    return Response(orjson.dumps(out, option=orjson.OPT_SERIALIZE_NUMPY),
                    media_type="application/json")


async def health(request):
    return Response(b"ok")


async def get_stats(request):
    return Response(orjson.dumps(stats), media_type="application/json")
"""

FLOOR_APP = (
    FLOOR_COMMON
    + """

async def predict(request):
    return answer(call(model, orjson.loads(await request.body())["rows"]))

app = Starlette(routes=[Route("/predict", predict, methods=["POST"]), Route("/health", health),
                        Route("/stats", get_stats)])
"""
)

# Requests wait in a list; one drain task yields to the loop while new ones keep arriving
# (at most 64 or 2 ms), then ``score``s them together, inline on the loop. Each request is
# routed to the canary with probability CANARY.
GATHERING = """
pending = []
draining = False


async def drain():
    global draining
    loop = asyncio.get_running_loop()
    try:
        while pending:
            deadline, size = loop.time() + 0.002, len(pending)
            while size < 64 and loop.time() < deadline:
                await asyncio.sleep(0)
                if len(pending) == size:
                    break
                size = len(pending)
            batch = pending[:64]
            del pending[:64]
            score(batch, loop)
    finally:
        draining = False


async def predict(request):
    global draining
    rows = orjson.loads(await request.body())["rows"]
    fut = asyncio.get_running_loop().create_future()
    pending.append((rows, fut, CANARY > 0 and random.random() < CANARY))
    if not draining:
        draining = True
        asyncio.get_running_loop().create_task(drain())
    return answer(await fut)

app = Starlette(routes=[Route("/predict", predict, methods=["POST"]), Route("/health", health),
                        Route("/stats", get_stats)])
"""

# One model: every gathered request in one call.
BATCHING_FLOOR_APP = (
    FLOOR_COMMON
    + """
CANARY = 0.0


def score(batch, loop):
    proba = call(model, [r for rs, _, _ in batch for r in rs])
    i = 0
    for rs, fut, _ in batch:
        fut.set_result(proba[i:i + len(rs)])
        i += len(rs)
"""
    + GATHERING
)

# The configured case without the platform: the same gathering, then per batch one champion
# call on its rows and the canary's (the paired scoring), one canary call on the ~10% of
# requests routed to it, and the shadow on every row, gathered like loopml's shadows (at
# most 256 rows or 200 ms a call); everything inline on the loop, no auth, no log.
CASE_FLOOR_APP = (
    FLOOR_COMMON
    + """
CANARY = 0.1
canary = joblib.load(os.environ["FLOOR_CANARY"])
shadow = joblib.load(os.environ["FLOOR_SHADOW"])
mirrored = []


def score_shadow():
    if mirrored:
        call(shadow, mirrored)
        mirrored.clear()


def score(batch, loop):
    rows = [r for rs, _, _ in batch for r in rs]
    on_canary = [r for rs, _, c in batch if c for r in rs]
    champ = call(model, rows)  # the canary's rows too: the paired scoring
    can = call(canary, on_canary) if on_canary else None
    i = j = 0
    for rs, fut, c in batch:
        if c:
            fut.set_result(can[j:j + len(rs)])
            j += len(rs)
        else:
            fut.set_result(champ[i:i + len(rs)])
        i += len(rs)
    if not mirrored:
        loop.call_later(0.2, score_shadow)
    mirrored.extend(rows)
    if len(mirrored) >= 256:
        score_shadow()
"""
    + GATHERING
)

CALIBRATE = f"""
import json, os, sys, time, joblib, numpy as np, pandas as pd
model = joblib.load(sys.argv[1])
frame = pd.read_csv(sys.argv[2], dtype={{c: str for c in {list(STRINGS)!r}}})[list(model.feature_names_in_)]
out = {{}}
for n in (1, 2, 4, 8, 16, 32, 64, 128, 256):
    X = frame.iloc[:n].copy()
    runs = []
    for _ in range(40):
        t = time.thread_time()
        model.predict_proba(X)
        runs.append(time.thread_time() - t)
    out[n] = float(np.median(runs))
print(json.dumps(out))
"""
