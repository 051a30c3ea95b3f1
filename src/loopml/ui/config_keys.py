"""What each key of ``loopml.yaml`` means, for the generated reference (``loopml.ui.docgen``).

A key's ``Field(description=...)`` in ``loopml.config.sections`` wins over this table; keys
without either fail ``tests/ui/test_docs.py``, so a new key cannot ship undocumented. Keys
are dotted paths; ``[]`` marks the items of a list (``monitor.alerts[].name``); gate options
are ``gates.<gate>.<option>``.
"""

from __future__ import annotations

DESCRIPTIONS: dict[str, str] = {
    # ---------------------------------------------------------------- top level
    "project": "The project's name, shown in the dashboard and reports.",
    "store": "The metadata store's SQLAlchemy URL: `sqlite:///path` (relative to the project "
    "folder) or `postgresql+psycopg://user:pass@host/db` for several replicas.",
    "artifacts": "Where models, reference profiles and prediction logs are kept: a folder "
    "(relative to the project) or an fsspec URL such as `s3://bucket/prefix`.",
    "data": "The training data and what its columns mean.",
    "model": "The model: its training function, parameters, format and model-card text.",
    "gates": "The checks a candidate must pass before it is registered.",
    "deploy": "The endpoint that serves the model and how new versions roll out; without it "
    "nothing is deployed automatically.",
    "monitor": "What is watched on each window of the prediction log, and the alert rules.",
    "retrain": "When the controller retrains, and on which data.",
    "serve": "The server: address, limits, batching, authentication, prediction log.",
    "log": "Where the prediction log, the label log and the refusal counts are kept.",
    "security": "Keys that sign and verify model manifests.",
    # ---------------------------------------------------------------- data
    "data.train": "The training data: a Parquet or CSV file or folder (relative to the "
    "project), or `module.py:function` returning a DataFrame or Arrow table.",
    "data.target": "The column to predict.",
    "data.features": "The input columns; unset: every column except the target and the "
    "`id`, `time`, `drop`, `sensitive` and `segments` columns.",
    "data.drop": "Columns never used as features (for example dates or free text).",
    "data.sensitive": "Columns the fairness gate and fairness monitor audit (for example sex, "
    "race). They are logged as context with each row, never passed to the model.",
    "data.segments": "Columns whose slices are reported and monitored separately (logged "
    "as context, not features).",
    "data.time": "A time column: with `split: time` (or `auto`) the latest rows become the "
    "test set, so the test imitates the future.",
    "data.id": "A row id column; never a feature. Used to trace label-lint findings back to rows.",
    "data.split": "How the test set is cut: `time` (latest rows, needs `time`), `stratified` "
    "(classification), `random`, or `auto` (time if a time column is set, else stratified "
    "for classification and random for regression).",
    "data.test_size": "The share of rows held out as the test set.",
    "data.test_from": "With `split: time`: rows whose time is at least this value form the "
    "test set (instead of the latest `test_size`).",
    "data.task": "`classification`, `regression`, or `auto` (read from the target: few "
    "distinct values or text means classification).",
    "data.positive_class": "The positive class of a binary classifier (for ROC AUC, "
    "fairness rates); unset: the second class in sorted order.",
    # ---------------------------------------------------------------- model
    "model.name": "The model's name in the registry; versions are numbered per model.",
    "model.description": "What the model does, for the model card.",
    "model.intended_use": "What it is meant for, for the model card.",
    "model.out_of_scope": "Uses it is not meant for, for the model card.",
    "model.owners": "Who answers for the model (names or e-mail addresses), for the card.",
    "model.threads": "BLAS/OpenMP threads while a run trains and judges (in `loopml run`, "
    "retraining and the demo); 1 by measurement on a busy 2-core machine.",
    "model.train": "The training function, `train.py:train` or `package.module:function`: "
    "`train(X, y, params, seed=0)` returning a fitted scikit-learn-style model.",
    "model.params": "Keyword parameters passed to the training function as `params`.",
    "model.format": "How the fitted model is saved: `skops` (safe, default), `onnx`, "
    "`lightgbm`, `xgboost`, or `pickle` (only with `trust_pickle`).",
    "model.trusted_types": "Extra Python types the skops loader may build (for your own "
    "transformers); everything else is refused when loading.",
    "model.trust_pickle": "Allow the `pickle` format. Pickles can run code when loaded; they "
    "are scanned first and loaded only from this project's artifact store.",
    "model.seed": "The seed passed to the training function (and used for splits).",
    # ---------------------------------------------------------------- gates
    "gates.metrics": "Thresholds on the test-set metrics, for example `{accuracy: '>= 0.75'}`.",
    "gates.champion": "Compare the candidate with the current champion on the same rows; "
    "runs only when a champion exists.",
    "gates.fairness": "Intersectional fairness across the `data.sensitive` columns; on with "
    "the four-fifths rule whenever they are set (`{enabled: false}` turns it off).",
    "gates.behaviour": "Behavioural tests: minimum functionality (MFT), invariance (INV) and "
    "directional (DIR) perturbations.",
    "gates.data": "Schema, quality and single-feature leakage checks of the training set.",
    "gates.labels": "Label lint: likely mislabelled rows (needs `pip install 'loopml[labels]'`), "
    "rare classes, outliers.",
    "gates.stability": "Retrain with several seeds and measure how much the metric and "
    "the predictions move (underspecification).",
    "gates.*.enabled": "false leaves the gate out (the fairness gate runs by default when "
    "`data.sensitive` is set).",
    "gates.*.blocking": "Whether a failure rejects the candidate (true) or is only recorded "
    "as a warning (false).",
    "gates.metrics.thresholds": "Metric name to condition, such as `accuracy: '>= 0.75'` or "
    "`rmse: '<= 3.2'`. The shorthand `gates.metrics: {accuracy: '>= 0.75'}` works too.",
    "gates.metrics.per_slice": "Also apply the thresholds on every sensitive and segment slice.",
    "gates.metrics.min_slice_size": "Slices smaller than this are reported, not judged.",
    "gates.metrics.min_rows": "Fewer test rows than this: the gate says the data is "
    "insufficient instead of judging.",
    "gates.fairness.thresholds": "`<criterion>_ratio` (a minimum) or `<criterion>_difference` "
    "(a maximum) for demographic_parity, equal_opportunity, equalized_odds, "
    "predictive_parity. Default: demographic_parity_ratio 0.8 (the four-fifths rule).",
    "gates.fairness.block_insufficient": "Block registration when a fairness ratio's "
    "interval straddles its threshold (insufficient evidence); by default it only warns.",
    "gates.fairness.explain": "When a check fails, say which columns carry the gap in mean "
    "score between the flagged group and the reference group (difference of mean Shapley "
    "attributions, in the gate's evidence and message; needs `loopml[explain]`).",
    "gates.fairness.min_group_size": "Groups (combinations of sensitive values) with fewer "
    "test rows are listed as not judged.",
    "gates.fairness.min_positives": "Fewer actual positives than this in a group: rates that "
    "need them (equal opportunity) are not judged for it.",
    "gates.fairness.min_negatives": "The same for actual negatives (false positive rates).",
    "gates.fairness.min_predicted_positives": "The same for predicted positives "
    "(predictive parity).",
    "gates.fairness.confidence": "Confidence of the Wilson intervals around each group's rate.",
    "gates.fairness.use_intervals": "Fail a ratio only when even the interval bounds (worst "
    "group's upper, best group's lower) are below the threshold: small groups' noise alone "
    "does not fail the gate.",
    "gates.fairness.pos_label": "The positive class for the rates; unset: `data.positive_class`.",
    "gates.behaviour.tests": "The tests, e.g. `{type: dir, column: SCHL, step: 2, expect: up}`, "
    "`{type: inv, perturbation: noise, columns: [AGEP], scale: 0.02}`, each with its "
    "`max_failure_rate`.",
    "gates.behaviour.max_rows": "Test rows sampled for the perturbation tests.",
    "gates.behaviour.max_failures_shown": "Failing rows listed per test in the report.",
    "gates.behaviour.seed": "Seed of the row sample and the noise.",
    "gates.champion.metric": "The metric compared; unset: roc_auc (binary), accuracy "
    "(multiclass) or rmse (regression).",
    "gates.champion.delta": "How much worse than the champion the candidate may be: the lower "
    "end of the paired interval of the improvement must be at least -delta.",
    "gates.champion.confidence": "Confidence of that paired interval (DeLong for ROC AUC, a "
    "paired bootstrap otherwise).",
    "gates.champion.n_boot": "Bootstrap resamples for the paired interval.",
    "gates.champion.min_rows": "Fewer shared rows than this: not judged.",
    "gates.champion.seed": "Seed of the bootstrap.",
    "gates.data.warn_null_rate": "Warn when a feature has more than this share of missing "
    "values (the block stays at `max_null_rate`).",
    "gates.data.leakage_warn_auc": "Warn when a single feature predicts the target with at "
    "least this ROC AUC on its own (possible leakage or a post-outcome column).",
    "gates.data.leakage_recode_auc": "Block a few-valued column (a near-copy or recoding of "
    "the target) whose single-feature ROC AUC reaches this.",
    "gates.data.recode_max_distinct": "A column with at most this many distinct values "
    "counts as few-valued for `leakage_recode_auc`.",
    "gates.data.max_null_rate": "A column with a larger share of missing values fails.",
    "gates.data.max_out_of_range_share": "Share of values allowed outside a column's robust range.",
    "gates.data.range_factor": "How far beyond the interquartile range a value must lie to "
    "count as out of range.",
    "gates.data.max_duplicate_share": "Fail above this share of duplicate rows (unset: "
    "reported only).",
    "gates.data.fail_on_constant": "Fail when a feature has a single value.",
    "gates.data.leakage_auc": "A single feature predicting the target with a cross-validated "
    "AUC above this is reported as likely leakage.",
    "gates.data.leakage_folds": "Cross-validation folds for the leakage check.",
    "gates.data.min_rows": "Fewer training rows than this: not judged.",
    "gates.labels.max_flagged_fraction": "Fail when more rows than this share look "
    "mislabelled (confident learning: out-of-fold predictions disagree with the label).",
    "gates.labels.min_class_share": "Fail when a class is rarer than this share.",
    "gates.labels.max_outlier_fraction": "Fail when more rows than this share are outliers.",
    "gates.labels.outlier_score": "The outlier score above which a row counts as an outlier.",
    "gates.labels.n_folds": "Folds for the out-of-fold predictions.",
    "gates.labels.max_rows": "Rows sampled for the label lint.",
    "gates.labels.filter_by": "The confident-learning filter (cleanlab's names, e.g. "
    "`prune_by_noise_rate`).",
    "gates.labels.outliers": "Also look for outliers.",
    "gates.labels.id_column": "The id column that names flagged rows; unset: `data.id`, or a "
    "column named `id`.",
    "gates.labels.top_n": "Flagged rows listed in the report.",
    "gates.labels.max_quarantine": "Flagged row ids stored for review at most.",
    "gates.stability.seeds": "How many seeds to train with.",
    "gates.stability.metric": "The metric whose spread is measured; unset: as the champion "
    "gate picks it.",
    "gates.stability.max_spread": "Largest allowed spread (max - min) of the metric over the "
    "seeds.",
    "gates.stability.max_slice_spread": "The same on the stress slices.",
    "gates.stability.max_disagreement": "Largest share of rows whose prediction changes with "
    "the seed.",
    "gates.stability.stress_slices": "How many of the worst slices to check.",
    "gates.stability.min_slice_size": "Smallest slice considered.",
    # ---------------------------------------------------------------- deploy
    "deploy.endpoint": "The endpoint's name, in the URLs (`/v1/endpoints/NAME/predict`).",
    "deploy.metric": "The endpoint's one decision metric: what the champion gate, the rollout "
    "guards and the decay trigger compare.",
    "deploy.rollout": "How a challenger goes from shadow to champion.",
    "deploy.rollout.shadow": "How long a challenger runs in shadow (copies of the requests, "
    "answers logged, never returned) before its first canary step.",
    "deploy.rollout.shadow_min_samples": "Rows the shadow must have answered before it may "
    "leave shadow.",
    "deploy.rollout.steps": "Canary weights in percent, increasing, the last normally 100 "
    "(champion).",
    "deploy.rollout.step_duration": "How long each canary step lasts while its guards hold.",
    "deploy.rollout.guards": "What rolls a challenger back by itself.",
    "deploy.rollout.guards.max_error_rate": "Roll back when the challenger's share of failed "
    "rows is above this (null: not guarded).",
    "deploy.rollout.guards.max_p99_ms": "Roll back when its 99th-percentile latency is above "
    "this many milliseconds.",
    "deploy.rollout.guards.max_prediction_drift": "Roll back when its predictions drift from "
    "the champion's by more than this (PSI). Null when the world has changed and a retrain is "
    "meant to answer differently.",
    "deploy.rollout.guards.score": "The per-row score the paired test judges (`error_rate`, "
    "`brier`, `log_loss`, `squared_error`, `absolute_error`); unset: the one that stands for "
    "`deploy.metric` (Brier for ROC AUC, the error rate for accuracy, squared error for RMSE).",
    "deploy.rollout.guards.margin": "Non-inferiority margin in the score's units: rolled back "
    "when the confidence sequence shows the challenger worse by more than this, promoted only "
    "when it shows it worse by less. Unset: 0.01 error rate, 0.005 Brier, 0.02 log loss, 2% of "
    "the champion's loss for regression scores. `max_accuracy_drop` is its old name.",
    "deploy.rollout.guards.alpha": "The paired test's error rate over a whole rollout, every "
    "look included (an anytime-valid confidence sequence).",
    "deploy.rollout.guards.min_requests": "Requests (or entity keys under sticky routing) "
    "with labelled pairs before the paired test gives any verdict.",
    "deploy.rollout.guards.promote_without_labels": "Promote on the operational guards alone "
    "when no labels ever arrive; by default such a rollout ends inconclusive.",
    "deploy.rollout.max_duration": "A rollout still undecided after this long ends "
    "`inconclusive`: the champion stays. Unset: twice the planned rollout (shadow + steps).",
    "deploy.rollout.guards.consecutive": "Breached batches in a row before a rollback (one "
    "noisy batch does not roll back).",
    "deploy.rollout.guards.min_samples": "Challenger rows per batch judged by the operational "
    "guards (errors, latency, prediction drift).",
    "deploy.expire_after": "A version retires this long after registration (null: never); "
    "the model card shows the date.",
    "deploy.idle_after": "A version out of every endpoint's traffic, with no rows seen by the "
    "monitor, for this long retires (a champion never retires by itself).",
    "deploy.extra_columns": "Columns a request carries that are neither model inputs nor "
    "declared context (`data.id`, `time`, `sensitive`, `segments`): `reject` (422 naming "
    "them) or `drop` (as MLflow does).",
    "deploy.unseen_categories": "A category not seen in training: `accept`, `flag` (answer "
    "and count it) or `reject` (422).",
    "deploy.nulls": "Missing values in a column that had none in training: `accept` or "
    "`reject` (422).",
    "deploy.coarsen": "Output coarsening against model extraction: `none`, `top_class` (no "
    "scores) or `rounded` (scores to two decimals).",
    # ---------------------------------------------------------------- monitor
    "monitor.window": "Length of a monitoring window of the prediction log.",
    "monitor.drift_share": "A window drifts when more than this share of the columns drift.",
    "monitor.false_alarm_rate": "The drift thresholds are calibrated so that a window of "
    "training-like rows breaches with this probability.",
    "monitor.min_window_rows": "Windows with fewer rows are recorded but not judged.",
    "monitor.performance_metric": "The live and estimated metric; unset: accuracy "
    "(classifier) or r2 (regression).",
    "monitor.max_performance_drop": "A window breaches when its metric is this much below "
    "the version's test metric (above it for log_loss, mae, rmse).",
    "monitor.fairness_threshold": "A window breaches when its worst group ratio is below this.",
    "monitor.min_group_size": "Groups with fewer rows in a window are not judged.",
    "monitor.schedule": "How often `loopml serve` runs a monitoring pass.",
    "monitor.grace": "A window is closed this long after its end (for the log to reach Parquet).",
    "monitor.labels_within": "Labels arriving later than this after the prediction are not joined.",
    "monitor.alerts": "Alert rules; each names what it watches (`on`).",
    "monitor.alerts[].name": "The rule's name, in alerts and webhooks.",
    "monitor.alerts[].on": "What it watches: drift, quality, performance, "
    "estimated_performance, fairness, latency, errors, or refused (the share of an "
    "endpoint's rows answered 4xx before the model, e.g. every request failing validation).",
    "monitor.alerts[].k": "Fire when k of the last m windows breach.",
    "monitor.alerts[].m": "See k.",
    "monitor.alerts[].cooldown": "After firing, stay quiet this long.",
    "monitor.alerts[].webhook": "A URL that receives the alert as JSON (besides "
    "`monitor.webhooks`).",
    "monitor.alerts[].severity": "info, warning or critical.",
    "monitor.alerts[].threshold": "The breach level: drifted share, metric drop, fairness "
    "ratio, p99 ms, error rate, quality findings or refused share; unset: the monitor "
    "section's setting (refused: 0.5).",
    "monitor.webhooks": "URLs that receive every alert as JSON.",
    # ---------------------------------------------------------------- retrain
    "retrain.on": "What starts a retrain: decay (the decision metric fell below the champion's own live "
    "level), drift, quality, schedule, "
    "labels (enough new ones), manual.",
    "retrain.cooldown": "At least this long between two retrains of an endpoint.",
    "retrain.schedule": "With `on: [schedule]`: retrain this often.",
    "retrain.min_new_labels": "With `on: [labels]`: retrain after this many new labelled rows.",
    "retrain.budget_per_day": "At most this many retrains per endpoint and day.",
    "retrain.breaker": "After this many failed retrains in a row (errors, or gates other than the "
    "champion comparison), stop until someone looks (a decision says so). A retrain that is "
    "merely not better backs off instead.",
    "retrain.recent": "How far back the labelled prediction log is taken as fresh data.",
    "retrain.include_original": "Train on the original data plus the recent labelled rows; "
    "false: the recent rows only (when the world changed and the old data teaches the old "
    "rule).",
    "retrain.holdout": "The newest share of the recent labelled rows is held out of training, "
    "so the champion gate compares both models on recent rows neither was trained on.",
    "retrain.decay_baseline_rows": "Decay is judged against the champion's own live level "
    "over its first this-many labelled rows as champion (not its offline test score).",
    "retrain.decay_floor": "An absolute level of the decision metric to judge decay against "
    "instead of the champion's first live windows.",
    "retrain.max_backoff": "Each retraining in a row that did not help (not better than the "
    "champion, rolled back or inconclusive) doubles the cooldown, up to this factor.",
    "retrain.k": "decay, drift and quality fire when k of the last m judged windows breach.",
    "retrain.m": "See k.",
    # ---------------------------------------------------------------- serve
    "serve.allowed_hosts": "With auth off, the Host and Origin names (besides loopback) the "
    "server answers; anything else gets 403, against cross-site requests and DNS rebinding.",
    "serve.session_secret": "The key that signs dashboard session cookies; unset: a random "
    "one per server start (sessions then end when the server restarts).",
    "serve.header_timeout": "A client must send its request headers within this long.",
    "serve.body_timeout": "A client must send its request body within this long.",
    "serve.idle_timeout": "An idle keep-alive connection is closed after this long.",
    "serve.max_connections": "Open connections at most; past it the oldest idle one is closed.",
    "serve.host": "The interface to listen on. Use 127.0.0.1 (default) behind a reverse "
    "proxy; 0.0.0.0 only with auth on.",
    "serve.port": "The port.",
    "serve.max_body_bytes": "Larger request bodies get 413.",
    "serve.max_batch_size": "Rows of concurrent requests batched into one model call.",
    "serve.max_batch_wait_ms": "How long a request may wait for others to batch with.",
    "serve.batch_delay_ms": "Under steady traffic, how long a batch waits at most for as many "
    "requests as the batch before it held (0: never; a lone client never waits).",
    "serve.durable_log": "Answer only after the prediction is in the log on disk (group "
    "commit); false trades the guarantee for latency.",
    "serve.log_commit_delay_ms": "While more predictions are being answered than a ready "
    "group of log records holds, how long the log waits before its fsync so that their "
    "records share it (0: never waits; a lone request never waits).",
    "serve.auth": "Require an API key (`Authorization: Bearer KEY`). Off only on loopback.",
    "serve.shadow_batch_wait_ms": "How long shadow scoring gathers requests into one model "
    "call (nobody waits on a shadow's answer).",
    "serve.inline_below_ms": "A model whose batched predict takes less CPU than this runs on "
    "the event loop; a slower one in a thread of its own, so health checks and other "
    "endpoints are answered while it predicts.",
    "serve.rate_limit_per_s": "Requests per second per API key (a token bucket), unless the "
    "key's own record sets another rate.",
    "serve.rate_burst": "Burst size of that bucket.",
    "serve.controller_interval": "How often the controller reconciles (triggers, rollouts, "
    "retirement).",
    "serve.background": "Where `loopml serve` runs the monitor and the controller: 'process' "
    "(default; one child process at lower CPU priority, restarted if it dies, so their passes "
    "do not slow requests) or 'thread' (threads of the serving process, for embedding and "
    "debugging).",
    "serve.background_nice": "How much lower the CPU priority (nice, 0-19) of the background "
    "process and of the log-compaction worker is than the server's.",
    "serve.background_max_growth": "The background process and the log-compaction worker hand "
    "over to a fresh process when their resident memory after a pass grew this much (a "
    "fraction) over the highest it was after their first three passes; 0 never. The background process "
    "passes what its monitoring passes kept to its successor, whose first pass looks only at "
    "what changed.",
    "serve.log_segment": "The prediction log rolls to a new segment this often.",
    "serve.compact_every": "Closed segments become Parquet this often.",
    # ---------------------------------------------------------------- log
    "log.root": "Where the logs' Parquet parts go, read by the server, the monitor, the "
    "controller, the dashboard and batch scoring: a folder (relative to the project) or an "
    "fsspec URL such as `s3://bucket/logs`. Unset: the artifacts root.",
    "log.spool": "This machine's folder for write-ahead segments not compacted yet (local "
    "disk). Unset: the log root when it is a folder, else `.loopml/spool` in the project.",
    "log.replica": "This server's name in the names of the parts it compacts (letters, "
    "digits, '.', '_'). Unset: the host name.",
    "log.label_wait": "With a remote log root, a label whose request id is in no part yet is "
    "kept this long (counted from the id's time) and looked up again at each compaction, "
    "since another replica may not have compacted the prediction yet.",
    # ---------------------------------------------------------------- security
    "security.public_key": "An Ed25519 public key (PEM path or text): versions whose manifest "
    "is unsigned or wrongly signed are refused.",
    "security.private_key": "The Ed25519 private key that signs each new version's manifest.",
}
