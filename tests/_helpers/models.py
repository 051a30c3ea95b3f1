"""Stand-ins for users' models in tests."""

from __future__ import annotations


class ColumnsOnly:
    """A user's model that is not a scikit-learn estimator and reads only some columns."""

    def __init__(self, model, columns):
        self.model, self.columns, self.classes_ = model, columns, model.classes_

    def predict(self, X):
        return self.model.predict(X[self.columns])

    def predict_proba(self, X):
        return self.model.predict_proba(X[self.columns])


def fitted_context(model, train, test, features, **extra):
    """``model`` fitted on ``train``'s ``features`` (target ``y``), in a gate context over
    ``test``; ``extra`` adds the context's other fields (sensitive, segments, train_fn...)."""
    from loopml.evaluate.gating.gates import GateContext

    model.fit(train[features], train["y"])
    return GateContext(
        model=model,
        X_test=test[features],
        y_test=test["y"],
        train=train,
        target="y",
        features=features,
        test_frame=test,
        **extra,
    )
