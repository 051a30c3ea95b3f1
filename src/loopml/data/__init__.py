"""Data sources, snapshots and model input signatures."""
