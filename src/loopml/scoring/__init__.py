"""Batch scoring: ``loopml score VERSION|ENDPOINT --input F --output F [--engine local|ray]``.

A file (or folder, local or an fsspec URL) of rows is scored in bounded chunks with the same
model loading and validation as serving; every row is written to the prediction log with role
``batch`` (monitored, labelled later by request id), and the output holds the input's columns
plus ``request_id``, ``prediction`` and, for classifiers, one ``proba_<class>`` per class.
"""

from __future__ import annotations

from loopml.scoring.scorejob import ScoreSummary, score

__all__ = ["ScoreSummary", "score"]
