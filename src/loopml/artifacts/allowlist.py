"""The reviewed lists of types loopml lets a model artifact construct.

Two lists live here, one per loader:

* ``skops_trusted_types()`` is passed to ``skops.io.loads(trusted=...)`` *on top of* skops' own
  defaults (primitives, containers, every public scikit-learn estimator, numpy/scipy ufuncs).
  It adds the scikit-learn internals that fitted models hold but skops does not trust by
  default. It is never derived from the artifact (``get_untrusted_types`` is only used to
  *report* what a refused file asks for), because a crafted file would simply list what it
  needs (the flaw MLflow documents for ``skops_trusted_types``).
* ``pickle_allowed(module, name)`` decides which globals a pickle or joblib stream may import.
  It is an allowlist checked on the exact ``(module, name)`` pair after the same
  ``fix_imports`` renaming the unpickler applies; a small deny-list is checked first so that
  no extra ``trusted_types`` entry can ever re-admit a known code-execution gadget.

Why these entries (each was seen in a real ``pickle.dumps``/``skops.io.dumps`` of a fitted
scikit-learn 1.9 model, or is the same family in another version):

* numpy array machinery: ``_reconstruct``/``scalar``/``_frombuffer`` (both ``numpy.core`` and
  ``numpy._core`` spellings), ``ndarray``, ``dtype``, scalar types (``OneHotEncoder(dtype=
  np.float64)`` stores the class), ``RandomState``/``Generator`` pickling constructors and the
  concrete bit generators (``random_state=np.random.RandomState(0)``).
* scikit-learn estimators: every class ``sklearn.utils.all_estimators()`` lists, plus the
  internals fitted estimators keep: trees (``Tree``, ``TreePredictor``, ``_BinMapper``), losses
  and links (``sklearn._loss``), calibration helpers, neighbour trees and distance metrics
  (not ``PyFuncDistance64``, which wraps an arbitrary Python function), MLP optimisers.
  ``TreePredictor`` and ``Tree`` hold raw node indices that scikit-learn trusts, so a *crafted*
  file could crash the process at predict time (skops leaves them out for that reason). loopml
  trusts them because its artifacts are content-addressed and sha256-verified (and optionally
  signed) before this check runs; the allowlist stops code execution, the digest stops tampering.
* scipy sparse matrices/arrays; stdlib value types (``builtins.slice``/``set``/``frozenset``/
  ``bytearray``/``complex``/``bytes``/``object``), ``collections.OrderedDict``, ``datetime``,
  ``copyreg._reconstructor`` (protocol 0/1 object creation), ``_codecs.encode`` (protocol 2
  ``bytes``); joblib's ``NumpyArrayWrapper`` (the scanner understands the inline array bytes).

``functools.partial`` is allowed for skops only, where skops audits the wrapped function as a
separate node; in a pickle it is denied, as are ``operator.attrgetter``/``methodcaller``.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

# --- the deny-list: checked first, cannot be overridden by trusted_types -----------------
DENIED_MODULES = frozenset(
    {
        "os",
        "posix",
        "nt",
        "subprocess",
        "sys",
        "importlib",
        "timeit",
        "runpy",
        "pickle",
        "_pickle",
        "pickletools",
        "shutil",
        "socket",
        "webbrowser",
        "ctypes",
        "code",
        "codeop",
        "pty",
        "asyncio",
        "multiprocessing",
        "signal",
        "marshal",
        "types",
        "inspect",
        "pdb",
        "bdb",
        "platform",
        "tempfile",
        "glob",
        "pathlib",
        "io",
        "_io",
        "urllib",
        "http",
        "ftplib",
        "smtplib",
        "telnetlib",
        "requests",
        "httpx",
        "dill",
        "cloudpickle",
        "torch",
        "_posixsubprocess",
        "posixpath",
        "ntpath",
        "threading",
        "_thread",
        "gc",
        "linecache",
        "zipimport",
        "pkgutil",
        "site",
        "sysconfig",
    }
)
DENIED_NAMES = frozenset(
    {
        "builtins.eval",
        "builtins.exec",
        "builtins.getattr",
        "builtins.setattr",
        "builtins.delattr",
        "builtins.open",
        "builtins.__import__",
        "builtins.compile",
        "builtins.input",
        "builtins.breakpoint",
        "builtins.globals",
        "builtins.locals",
        "builtins.vars",
        "builtins.type",
        "builtins.help",
        "builtins.memoryview",
        "operator.attrgetter",
        "operator.methodcaller",
        "operator.itemgetter",
        "functools.partial",
        "functools.reduce",
        "numpy.load",
        "numpy.loadtxt",
        "numpy.fromfile",
        "numpy.genfromtxt",
        "numpy.save",
        "numpy.memmap",
        "numpy.lib.npyio.load",
        "numpy.testing",
        "sklearn.datasets",
        "joblib.load",
        "sklearn.metrics._dist_metrics.PyFuncDistance64",
    }
)


def is_denied(qualified: str) -> bool:
    """True when ``module.name`` is (or lives under) a known code-execution gadget."""
    module = qualified.rsplit(".", 1)[0]
    top = module.split(".", 1)[0]
    if top in DENIED_MODULES or qualified in DENIED_NAMES:
        return True
    return any(qualified.startswith(d + ".") for d in DENIED_NAMES)


# --- reviewed lists ----------------------------------------------------------------------
_NUMPY = [
    f"numpy.{core}.multiarray.{n}" for core in ("core", "_core") for n in ("_reconstruct", "scalar")
] + [
    "numpy.core.numeric._frombuffer",
    "numpy._core.numeric._frombuffer",
    "numpy.ndarray",
    "numpy.dtype",
    "numpy.random._pickle.__randomstate_ctor",
    "numpy.random._pickle.__generator_ctor",
    "numpy.random._pickle.__bit_generator_ctor",
    "numpy.random.mtrand.RandomState",
    "numpy.random._generator.Generator",
    "numpy.random._mt19937.MT19937",
    "numpy.random._pcg64.PCG64",
    "numpy.random._pcg64.PCG64DXSM",
    "numpy.random._philox.Philox",
    "numpy.random._sfc64.SFC64",
    "numpy.random.bit_generator.SeedSequence",
    "numpy.random.bit_generator.__pyx_unpickle_SeedSequence",
]
_NUMPY_SCALARS = [
    "bool",
    "bool_",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "intc",
    "uintc",
    "longlong",
    "ulonglong",
    "float16",
    "float32",
    "float64",
    "longdouble",
    "complex64",
    "complex128",
    "clongdouble",
    "str_",
    "bytes_",
    "object_",
    "datetime64",
    "timedelta64",
    "void",
]
_LOSSES = (  # sklearn._loss
    "AbsoluteError",
    "ExponentialLoss",
    "HalfBinomialLoss",
    "HalfGammaLoss",
    "HalfMultinomialLoss",
    "HalfPoissonLoss",
    "HalfSquaredError",
    "HalfTweedieLoss",
    "HalfTweedieLossIdentity",
    "HuberLoss",
    "PinballLoss",
)

_SKLEARN_INTERNALS = [
    "sklearn.tree._tree.Tree",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    "sklearn.neighbors._kd_tree.KDTree",
    "sklearn.neighbors._kd_tree.newObj",
    "sklearn.neighbors._ball_tree.BallTree",
    "sklearn.neighbors._ball_tree.newObj",
    "sklearn.metrics._dist_metrics.newObj",
    "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
    "sklearn.neural_network._stochastic_optimizers.SGDOptimizer",
    "sklearn.compose._column_transformer._RemainderColsList",
    *(
        f"sklearn.metrics._dist_metrics.{n}Distance64"
        for n in (
            "BrayCurtis",
            "Canberra",
            "Chebyshev",
            "Dice",
            "Euclidean",
            "Hamming",
            "Haversine",
            "Jaccard",
            "Kulsinski",
            "Mahalanobis",
            "Manhattan",
            "Matching",
            "Minkowski",
            "RogersTanimoto",
            "RussellRao",
            "SEuclidean",
            "SokalMichener",
            "SokalSneath",
        )
    ),
    *(f"sklearn._loss.loss.{n}" for n in _LOSSES),
    *(f"sklearn._loss._loss.Cy{n}" for n in _LOSSES),  # each loss's Cython twin
    *(
        f"sklearn._loss.link.{n}"
        for n in (
            "HalfLogitLink",
            "IdentityLink",
            "Interval",
            "LogLink",
            "LogitLink",
            "MultinomialLogit",
        )
    ),
]
_SCIPY_SPARSE = [
    f"scipy.sparse._{fmt}.{fmt}_{kind}"
    for fmt in ("csr", "csc", "coo", "bsr", "dia", "dok", "lil")
    for kind in ("matrix", "array")
]
_STDLIB = [
    "builtins.slice",
    "builtins.set",
    "builtins.frozenset",
    "builtins.bytearray",
    "builtins.complex",
    "builtins.bytes",
    "builtins.object",
    "builtins.list",
    "builtins.dict",
    "builtins.tuple",
    "builtins.int",
    "builtins.float",
    "builtins.str",
    "builtins.bool",
    "collections.OrderedDict",
    "copyreg._reconstructor",
    "_codecs.encode",
    "datetime.datetime",
    "datetime.date",
    "datetime.time",
    "datetime.timedelta",
    "datetime.timezone",
]
JOBLIB_WRAPPER = "joblib.numpy_pickle.NumpyArrayWrapper"

# Only for skops: it audits partial's function as its own node.
_SKOPS_EXTRA = ["functools.partial", "sklearn.utils.validation.check_array", "numpy.dtype"]


@functools.cache
def sklearn_estimator_names() -> frozenset[str]:
    """Qualified names of every public scikit-learn estimator class (``all_estimators``)."""
    from sklearn.utils import all_estimators

    return frozenset(
        f"{cls.__module__}.{cls.__qualname__}"
        for _, cls in all_estimators()
        if cls.__module__.startswith("sklearn.")
    )


@functools.cache
def pickle_allowlist() -> frozenset[str]:
    """Every ``module.name`` a pickle may import, before a model's extra ``trusted_types``."""
    names = set(_NUMPY) | {f"numpy.{s}" for s in _NUMPY_SCALARS}
    names |= set(_SKLEARN_INTERNALS) | set(_SCIPY_SPARSE) | set(_STDLIB) | {JOBLIB_WRAPPER}
    names |= sklearn_estimator_names()
    return frozenset(n for n in names if not is_denied(n))


def skops_trusted_types(extra: Iterable[str] = ()) -> list[str]:
    """The list handed to ``skops.io.loads(trusted=...)``: loopml's reviewed internals + extra.

    Extra entries come from ``model.trusted_types`` in loopml.yaml, never from the artifact.
    Denied gadgets are dropped from ``extra`` so configuration cannot re-admit them.
    """
    extra = [t for t in extra if not is_denied(t) or t in _SKOPS_EXTRA]
    return sorted(set(_SKLEARN_INTERNALS) | set(_SKOPS_EXTRA) | set(extra))
