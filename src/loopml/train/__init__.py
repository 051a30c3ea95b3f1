"""The training pipeline: load -> validate -> split -> train -> evaluate -> gate -> register."""

from loopml.train.pipeline import RunResult, run

__all__ = ["RunResult", "run"]
