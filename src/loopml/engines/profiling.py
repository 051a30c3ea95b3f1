"""Profiling a large Parquet data set on an engine: a profile per block, merged on the driver.

Blocks are chunks of row groups (:mod:`loopml.engines.chunks`). Profiles merge with ``+``
only when their numeric columns share bin edges, so:

- with a ``reference`` (a window profiled against a model's reference), every block is
  profiled on the reference's edges;
- without one (profiling a reference), the first block is profiled here, taking its edges from
  its first batch exactly as :meth:`~loopml.stats.DatasetProfile.from_parquet` takes them from
  the file's first batch, and the other blocks are profiled on those edges, with quantile
  sketches.

Blocks are merged in file order, so the local and the Ray engine give the same profile bit for
bit, floating sums included (but for the KLL quantile sketches, whose compactions flip a random
coin in each process: they agree within their rank error); against one streamed :meth:`~loopml.stats.DatasetProfile.from_parquet` pass, counts,
nulls, minima, maxima and histograms are equal, means and variances equal up to floating-point
rounding (summed in another order), and quantile sketches agree within their rank error.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pyarrow as pa

from loopml.engines import Engine, get_engine
from loopml.engines.chunks import Chunk, plan, read_chunk
from loopml.stats.profile import BATCH_ROWS, DatasetProfile

ROWS_PER_BLOCK = 1 << 20


def _batches(chunk: Chunk, columns: list[str]) -> Iterator[pa.RecordBatch]:
    """The chunk's rows one row group at a time, in batches of ``BATCH_ROWS`` rows: the batches
    ``from_parquet`` sees (so the first block's edges are the same), one row group in memory."""
    if chunk.path is None:
        yield from read_chunk(chunk, columns).to_batches(max_chunksize=BATCH_ROWS)
        return
    for group in chunk.groups:
        one = Chunk(chunk.index, 0, chunk.path, (group,))
        yield from read_chunk(one, columns).to_batches(max_chunksize=BATCH_ROWS)


def _profile_block(chunk: Chunk, shared: tuple[Any, ...]) -> DatasetProfile:
    reference, columns, options = shared
    return DatasetProfile.from_batches(_batches(chunk, columns), reference, **options)


def profile_parquet(
    url: str,
    *,
    engine: Engine | str | None = None,
    reference: DatasetProfile | None = None,
    columns: list[str] | None = None,
    rows_per_block: int = ROWS_PER_BLOCK,
    **options: Any,
) -> DatasetProfile:
    """Profile a Parquet file or folder (local or an fsspec URL) on ``engine``; see the module
    docstring. ``options`` are :meth:`DatasetProfile.from_frame`'s (``kinds``, ``n_bins`` ...)."""
    chunks, _, schema = plan(url, rows_per_block)
    names = columns if columns is not None else (list(schema.names) if schema else [])
    if not chunks:
        assert schema is not None
        return DatasetProfile.from_frame(schema.empty_table().select(names), reference, **options)
    eng = get_engine(engine) if engine is None or isinstance(engine, str) else engine
    try:
        first = _profile_block(chunks[0], (reference, names, options))
        rest_reference = reference if reference is not None else first
        rest_options = options if reference is not None else {"sketch": True, **options}
        total = first
        for part in eng.map(
            _profile_block, chunks[1:], shared=(rest_reference, names, rest_options)
        ):
            total = total + part
    finally:
        if eng is not engine:
            eng.close()
    return total
