"""The ACS employment example (Massachusetts, 2015 -> 2018).

The data ships inside the ``nannyml`` 0.13.1 wheel (installed by the Makefile with
``--no-deps``); loopml locates the package folder and reads the Parquet files it carries,
never importing nannyml. ``prepare(dest)`` writes one Parquet file per year with the label
joined on ``id`` and the leaking ``prediction`` / ``predicted_probability`` columns dropped.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pandas as pd

from loopml.errors import DataError

HERE = Path(__file__).parent
YEARS = (2015, 2016, 2017, 2018)
LEAKS = ["prediction", "predicted_probability"]


def source_folder() -> Path:
    spec = importlib.util.find_spec("nannyml")
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            "The employment example data is not installed. It ships inside the nannyml 0.13.1 "
            "wheel: run 'pip install --no-deps nannyml==0.13.1' (make demo does this for you)."
        )
    return Path(spec.submodule_search_locations[0]) / "datasets" / "data"


def load_years() -> dict[int, pd.DataFrame]:
    src = source_folder()
    ref = pd.read_parquet(src / "employment_MA_reference.pq")
    ana = pd.read_parquet(src / "employment_MA_analysis.pq")
    target = pd.read_parquet(src / "employment_MA_analysis_target.pq")
    ana = ana.merge(target, on="id", how="left", validate="one_to_one")
    frame = pd.concat(
        [ref.drop(columns=LEAKS, errors="ignore"), ana.drop(columns=LEAKS, errors="ignore")],
        ignore_index=True,
    )
    # SCHL (educational attainment) is an ordinal code: keep it numeric so that "more
    # education" has a direction the behavioural tests can check.
    frame["SCHL"] = pd.to_numeric(frame["SCHL"].astype(str)).astype("float64")
    for c in frame.columns:
        if isinstance(frame[c].dtype, pd.CategoricalDtype):
            frame[c] = frame[c].astype(str)
    cols = [c for c in frame.columns if c not in ("employed",)] + ["employed"]
    frame = frame[cols]
    return {y: frame[frame["year"] == y].reset_index(drop=True) for y in YEARS}


def prepare(dest: Path) -> dict[int, Path]:
    """Write data/employment_<year>.parquet under ``dest``; returns the paths by year."""
    out = Path(dest) / "data"
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for year, frame in load_years().items():
        p = out / f"employment_{year}.parquet"
        frame.to_parquet(p, index=False)
        paths[year] = p
    return paths


def write_project(dest: Path) -> Path:
    """Copy loopml.yaml and train.py into ``dest`` and prepare the data; returns ``dest``."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("loopml.yaml", "train.py"):
        shutil.copyfile(HERE / name, dest / name)
    prepare(dest)
    return dest
