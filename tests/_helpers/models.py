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
