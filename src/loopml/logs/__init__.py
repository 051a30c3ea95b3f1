"""The prediction log, the label log and the refusal counts: below ``serve`` (which writes
them) and ``monitor`` (which reads them), so both import it and it imports neither.

- ``layout``: the names and paths of segments and parts, and the one configured location
  (``log_location``: ``log.root``, ``log.spool``, ``log.replica``);
- ``wal``: checksummed segment files with group commit (the write-ahead log);
- ``predlog``: the writer (``PredictionLog``);
- ``logtables``: Arrow tables from the records;
- ``compaction``: segments of the local spool become Parquet parts under the root, each
  written whole or not at all (``upload``);
- ``pending``: labels whose prediction another replica has not compacted yet, kept and
  looked up again;
- ``logfiles`` and ``parts``: the fsspec reader of the parts (discovery, statistics, batches);
- ``logreader``: whole reads of parts plus segments not compacted yet.
"""
