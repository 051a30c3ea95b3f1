"""Which fitted models have an exact Shapley method (:mod:`loopml.evaluate.xai.explain`), by
class name: the tree ensembles ``shap.TreeExplainer`` reads, LightGBM (its own
``pred_contrib``), and the linear models ``shap.LinearExplainer`` reads. Any other model gets
the model-agnostic method."""

from __future__ import annotations

TREE_MODELS = frozenset(
    {
        "HistGradientBoostingClassifier",
        "HistGradientBoostingRegressor",
        "GradientBoostingClassifier",
        "GradientBoostingRegressor",
        "RandomForestClassifier",
        "RandomForestRegressor",
        "ExtraTreesClassifier",
        "ExtraTreesRegressor",
        "DecisionTreeClassifier",
        "DecisionTreeRegressor",
        "XGBClassifier",
        "XGBRegressor",
    }
)
# trees whose raw output is a probability (averaged leaf class shares), not a margin
PROBABILITY_TREES = frozenset(
    {"RandomForestClassifier", "ExtraTreesClassifier", "DecisionTreeClassifier"}
)
LINEAR_MODELS = frozenset(
    {
        "LogisticRegression",
        "LogisticRegressionCV",
        "LinearRegression",
        "Ridge",
        "RidgeCV",
        "Lasso",
        "LassoCV",
        "ElasticNet",
        "ElasticNetCV",
        "SGDClassifier",
        "SGDRegressor",
    }
)
NATIVE_MODELS = frozenset({"LGBMClassifier", "LGBMRegressor", "Booster"})
