"""Content-addressed artifact store, safe model formats, pickle scanning and signatures."""

from loopml.artifacts.compression import decompress_joblib
from loopml.artifacts.formats import FORMATS, SUFFIXES, default_format, load_model, save_model
from loopml.artifacts.pickle_scan import ScanReport, scan_pickle
from loopml.artifacts.signing import (
    build_manifest,
    canonical_json,
    generate_keypair,
    sign_manifest,
    verify_manifest,
)
from loopml.artifacts.store import ArtifactStore

__all__ = [
    "FORMATS",
    "SUFFIXES",
    "ArtifactStore",
    "ScanReport",
    "build_manifest",
    "canonical_json",
    "decompress_joblib",
    "default_format",
    "generate_keypair",
    "load_model",
    "save_model",
    "scan_pickle",
    "sign_manifest",
    "verify_manifest",
]
