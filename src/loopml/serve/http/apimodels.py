"""The request and response bodies of the HTTP API as pydantic models.

They are what ``GET /openapi.json`` is generated from (:mod:`loopml.serve.http.openapi`, with the
route table of :mod:`loopml.serve.http.application`), and the fuzz test in the suite holds the server to
them: every answer it gets is validated against the response models. The handlers parse by
hand (orjson, one pass, errors naming the field), so these models are the contract, kept
honest by that test rather than by being on the request path.

Models of stored rows (endpoints, versions, decisions, ...) name the fields clients rely on
and allow more: the store adds columns over time.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Scalar = str | float | int | bool | None


class Closed(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Open(BaseModel):
    model_config = ConfigDict(extra="allow")


# -- errors -----------------------------------------------------------------------------------


class ErrorBody(Open):
    """The one error shape of every 4xx and 5xx answer."""

    error: str = Field(description="What failed, why, and what to do.")
    field: str | None = Field(description="The input at fault (a key, header or parameter).")
    status: int = Field(description="The HTTP status, repeated.")


# -- predictions ------------------------------------------------------------------------------


class RowsBody(Closed):
    """One object per row, keyed by column name."""

    rows: list[dict[str, Scalar]] = Field(min_length=1)


class ColumnsBody(Closed):
    """Column names once, then rows of values in that order."""

    columns: list[str] = Field(min_length=1)
    data: list[list[Scalar]] = Field(min_length=1)


class PredictAnswer(Closed):
    request_ids: list[str] = Field(description="One id per row; send it back with the label.")
    predictions: list[Any]
    probabilities: list[list[float]] | None = None
    classes: list[Any] | None = Field(None, description="The order of probabilities' columns.")
    model_version: int


class RequestIdsBody(Closed):
    """Logged predictions to explain, by request id (each with the version that answered)."""

    request_ids: list[str] = Field(min_length=1)


class Explanation(Open):
    request_id: str | None = None
    value: float
    base_value: float
    attributions: dict[str, float]


class ExplainAnswer(Open):
    model_version: int | list[int]
    output: str = Field(description="The explained quantity, e.g. 'probability of class 1'.")
    explanations: list[Explanation]


class MLflowSplit(Open):
    columns: list[str] | None = None
    data: list[Any]


class MLflowBody(Closed):
    """MLflow's scoring protocol: exactly one of the four input keys (and maybe ``params``)."""

    dataframe_split: MLflowSplit | None = None
    dataframe_records: list[dict[str, Scalar]] | None = None
    instances: list[Any] | dict[str, Any] | None = None
    inputs: list[Any] | dict[str, Any] | None = None
    params: dict[str, Any] | None = None


class MLflowAnswer(Closed):
    predictions: list[Any]


class V2Tensor(Open):
    name: str
    shape: list[int]
    datatype: str
    data: list[Any]
    parameters: dict[str, Any] | None = None


class V2Requested(Open):
    name: str
    parameters: dict[str, Any] | None = None


class V2InferBody(Open):
    """Open Inference Protocol (KServe V2): one input per column, shape ``[n]``."""

    id: str | None = None
    parameters: dict[str, Any] | None = None
    inputs: list[V2Tensor] = Field(min_length=1)
    outputs: list[V2Requested] | None = None


class V2InferAnswer(Open):
    model_name: str
    model_version: str | None = None
    id: str
    outputs: list[V2Tensor]


class V2TensorMeta(Open):
    name: str
    datatype: str
    shape: list[int]


class V2ModelAnswer(Open):
    name: str
    versions: list[str]
    platform: str
    inputs: list[V2TensorMeta]
    outputs: list[V2TensorMeta]


class V2ServerAnswer(Open):
    name: str
    version: str
    extensions: list[str]


class LiveAnswer(Closed):
    live: bool


class ReadyAnswer(Closed):
    ready: bool


class ModelReadyAnswer(Closed):
    name: str
    ready: bool


class HealthAnswer(Closed):
    status: Literal["ok"]
    ready: bool


# -- labels -----------------------------------------------------------------------------------


class Label(Closed):
    request_id: str = Field(min_length=1, max_length=64)
    label: str | float | int | bool


class LabelsBody(Closed):
    labels: list[Label] = Field(min_length=1)


class LabelsAnswer(Closed):
    accepted: int
    unknown: list[str] = Field(description="Request ids the prediction log does not know.")


# -- traffic (deployer) -----------------------------------------------------------------------


class Reason(Closed):
    reason: str = Field("", max_length=2000, description="Recorded in the decisions log.")


class DeployBody(Reason):
    version: int = Field(ge=1)
    canary: float | None = Field(None, gt=0, le=100, description="Percent of traffic.")
    shadow: bool = False
    shadow_fraction: float = Field(1.0, gt=0, le=1)


class PromoteBody(Reason):
    version: int = Field(ge=1)


class ServingState(Open):
    ready: bool
    loaded: list[int]
    load_error: dict[str, Any] | None = None


class EndpointRow(Open):
    name: str
    champion_id: int | None = None
    server: ServingState | None = None


class DisableAnswer(Closed):
    version: int
    status: Literal["disabled"]
    removed_from: list[str]


class EnableAnswer(Closed):
    version: int
    status: str


# -- reads (viewer) ---------------------------------------------------------------------------


class VersionRow(Open):
    id: int
    model: str
    status: str


class DecisionRow(Open):
    id: int
    actor: str
    action: str
    endpoint: str | None = None


class AlertRow(Open):
    id: int
    endpoint: str | None = None


class WindowRow(Open):
    id: int
    endpoint: str


class KeyRow(Open):
    id: int
    prefix: str
    role: str
    endpoints: list[str] | None = Field(None, description="A scoped key's endpoints.")
