"""The training pipeline: load -> validate -> split -> train -> evaluate -> gate -> register."""

# Imported first, on purpose. When skops is first imported (to save the model) it names every
# scipy.special ufunc by scanning sys.modules in import order until the ufunc turns up
# (skops.io._utils.whichmodule, ~230 ufuncs). Loaded here, before pandas, pydantic, SQLAlchemy
# and the user's scikit-learn, scipy.special sits ~440th in that scan instead of ~1140th:
# ~1 s less per `loopml run`, with the same trusted-type names (the scan's first match is
# still scipy.special itself).
import scipy.special  # noqa: F401

from loopml.train.pipeline import RunResult, run

__all__ = ["RunResult", "run"]
