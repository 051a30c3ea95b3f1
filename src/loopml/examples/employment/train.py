"""Training function for the ACS employment example: one-hot categories + gradient boosting."""

import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder


def train(X: pd.DataFrame, y: pd.Series, params: dict, seed: int = 0) -> Pipeline:
    categorical = [c for c in X.columns if not pd.api.types.is_numeric_dtype(X[c])]
    encode = ColumnTransformer(
        [("categories", OneHotEncoder(handle_unknown="ignore", sparse_output=False), categorical)],
        remainder="passthrough",
    )
    model = HistGradientBoostingClassifier(
        max_iter=params.get("max_iter", 150),
        learning_rate=params.get("learning_rate", 0.1),
        max_leaf_nodes=params.get("max_leaf_nodes", 31),
        random_state=seed,
    )
    return Pipeline([("encode", encode), ("model", model)]).fit(X, y)
