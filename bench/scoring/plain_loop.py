"""The anchor: a plain pandas + ``model.predict`` loop over the same Parquet file, writing the
same output columns (no validation, no prediction log). Run by ``run.py`` in a subprocess."""

from __future__ import annotations

import sys
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


def main(project: str, version: int, src: str, dst: str, batch_rows: int) -> None:
    from loopml.artifacts.model_loader import load_version
    from loopml.artifacts.store import ArtifactStore
    from loopml.config import load_config
    from loopml.store import Store

    cfg = load_config(project)
    row = Store(cfg.store_url).versions.get(version)
    model = load_version(ArtifactStore(cfg.artifacts_root), row)
    features = [c["name"] for c in row["signature"]["columns"]]
    t0 = time.perf_counter()
    writer = None
    rows = 0
    for batch in pq.ParquetFile(src).iter_batches(batch_size=batch_rows):
        df = batch.to_pandas()
        X = df[features]
        df["prediction"] = model.predict(X)
        proba = model.predict_proba(X)
        for j, c in enumerate(model.classes_):
            df[f"proba_{c}"] = proba[:, j]
        table = pa.Table.from_pandas(df, preserve_index=False)
        if writer is None:
            writer = pq.ParquetWriter(dst, table.schema)
        writer.write_table(table)
        rows += len(df)
    if writer is not None:
        writer.close()
    print(f"plain rows={rows} seconds={time.perf_counter() - t0:.3f}", file=sys.stderr)
    np.asarray(0)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5]))
