"""The symbolic opcode machine behind ``pickle_scan``: it follows a pickle stream without ever
running it (``pickle_scan`` says why this is written by hand).

It walks the opcodes with ``pickletools.genops`` and runs a small abstract stack machine beside
them: strings, numbers, tuples, lists, dicts and memo slots are tracked, so ``STACK_GLOBAL``
learns its module and name even when they come through ``MEMOIZE``/``GET``; every object is a
symbol (``_Global``, ``_Obj``), nothing is called. Every ``GLOBAL``/``STACK_GLOBAL``/``INST``
import is checked against the allowlist in ``allowlist.py`` (after the same protocol-0..2
``fix_imports`` renaming the unpickler does).

joblib files are not pure pickles: after each ``NumpyArrayWrapper`` is built, joblib writes the
array bytes inline (optionally after one padding-length byte and padding), or, for object
arrays, a nested pickle. In ``joblib`` mode the machine mirrors ``joblib.NumpyUnpickler``: it
emulates the pure-Python unpickler's frame buffering, computes the array's byte size from the
wrapper's recorded ``shape`` and ``dtype`` (the dtype is rebuilt by numpy from primitive
values only), skips exactly those bytes, and scans nested object-array pickles recursively.
"""

from __future__ import annotations

import _compat_pickle
import io
import pickletools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from loopml.artifacts.allowlist import JOBLIB_WRAPPER, is_denied
from loopml.artifacts.pickle_stream import _FramedReader, _ScanError

if TYPE_CHECKING:
    from loopml.artifacts.pickle_scan import ScanReport

_MAX_NESTING = 8


@dataclass(eq=False)
class _Global:
    name: str


@dataclass(eq=False)
class _Obj:
    """An instance the unpickler would create: ``cls`` is the global behind it, if known."""

    cls: _Global | None
    args: Any = ()
    via_new: bool = False  # created by cls.__new__ alone, so no __init__ set attributes
    attrs: dict[str, Any] = field(default_factory=dict)
    states: list[Any] = field(default_factory=list)


@dataclass(eq=False)
class _List:
    items: list[Any] = field(default_factory=list)


@dataclass(eq=False)
class _Dict:
    pairs: list[tuple[Any, Any]] = field(default_factory=list)


def _import_name(module: str, name: str, proto: int) -> str:
    if proto < 3:  # Unpickler(fix_imports=True) maps Python 2 names the same way
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        elif module in _compat_pickle.IMPORT_MAPPING:
            module = _compat_pickle.IMPORT_MAPPING[module]
    if not (module + name).isascii() or "." in name or not module or not name:
        raise _ScanError(f"unusual global name {module!r} {name!r}")
    return f"{module}.{name}"


_PUSH_ARG = frozenset(  # opcodes that push their own argument
    {
        "INT",
        "BININT",
        "BININT1",
        "BININT2",
        "LONG",
        "LONG1",
        "LONG4",
        "FLOAT",
        "BINFLOAT",
        "BINBYTES",
        "SHORT_BINBYTES",
        "BINBYTES8",
        "UNICODE",
        "SHORT_BINUNICODE",
        "BINUNICODE",
        "BINUNICODE8",
    }
)


class _Machine:
    """One pickle stream's stack, memo and protocol; ``report`` is shared with nested ones."""

    def __init__(
        self, report: ScanReport, allowed: frozenset[str], joblib: bool, depth: int = 0
    ) -> None:
        self.report, self.allowed, self.joblib, self.depth = report, allowed, joblib, depth
        self.stack: list[Any] = []
        self.metastack: list[list[Any]] = []
        self.memo: dict[int, Any] = {}
        self.proto = 0

    def check(self, qualified: str) -> _Global:
        self.report.globals.append(qualified)
        if is_denied(qualified) or qualified not in self.allowed:
            self.report.refused.append(qualified)
        return _Global(qualified)

    def run(self, f: io.BytesIO) -> None:
        """Scan from ``f``'s position to the first STOP, leaving ``f`` where the loader would."""
        if self.depth > _MAX_NESTING:
            raise _ScanError("object arrays nested too deeply")
        # joblib's NumpyUnpickler (and its nested object-array unpickler) is pickle's
        # pure-Python _Unpickler, whose frame buffering changes what raw reads see; the C
        # unpickler behind pickle.loads reads frames linearly.
        reader = _FramedReader(f, framed=self.joblib or self.depth > 0)
        for op, arg, pos in pickletools.genops(reader):  # type: ignore[arg-type]
            if op.name == "STOP":
                return
            try:
                self.step(op.name, arg, reader, f)
            except _ScanError as exc:
                raise _ScanError(f"{exc} (opcode {op.name} at byte {pos})") from None
        raise _ScanError("pickle ended without STOP")

    # stack helpers, with the unpickler's own rules
    def push(self, value: Any) -> None:
        self.stack.append(value)

    def pop(self) -> Any:
        if not self.stack:
            raise _ScanError("stack underflow")
        return self.stack.pop()

    def top(self) -> Any:
        if not self.stack:
            raise _ScanError("stack underflow")
        return self.stack[-1]

    def pop_mark(self) -> list[Any]:
        if not self.metastack:
            raise _ScanError("MARK expected on the stack")
        items, self.stack = self.stack, self.metastack.pop()
        return items

    @staticmethod
    def instance(cls: Any, args: Any, via_new: bool) -> _Obj:
        if not isinstance(cls, _Global):
            raise _ScanError("an object is created from something that is not an import")
        return _Obj(cls, args, via_new)

    def step(self, name: str, arg: Any, reader: _FramedReader, f: io.BytesIO) -> None:
        if name == "PROTO":
            self.proto = arg
        elif name == "FRAME":
            reader.load_frame(arg)
        elif name in _PUSH_ARG:
            self.push(arg)
        elif name in ("STRING", "BINSTRING", "SHORT_BINSTRING"):
            if not isinstance(arg, str) or not arg.isascii():
                raise _ScanError("a non-ASCII 8-bit string")
            self.push(arg)
        elif name == "BYTEARRAY8":
            self.push(_Obj(_Global("builtins.bytearray"), arg))
        elif name == "NONE":
            self.push(None)
        elif name in ("NEWTRUE", "NEWFALSE"):
            self.push(name == "NEWTRUE")
        elif name == "EMPTY_LIST":
            self.push(_List())
        elif name == "LIST":
            self.push(_List(self.pop_mark()))
        elif name == "EMPTY_DICT":
            self.push(_Dict())
        elif name == "DICT":
            items = self.pop_mark()
            self.push(_Dict(list(zip(items[::2], items[1::2], strict=False))))
        elif name == "EMPTY_SET":
            self.push(_Obj(_Global("builtins.set")))
        elif name == "FROZENSET":
            self.push(_Obj(_Global("builtins.frozenset"), tuple(self.pop_mark())))
        elif name == "EMPTY_TUPLE":
            self.push(())
        elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
            n = int(name[-1])
            if len(self.stack) < n:
                raise _ScanError("stack underflow")
            items = self.stack[-n:]
            del self.stack[-n:]
            self.push(tuple(items))
        elif name == "TUPLE":
            self.push(tuple(self.pop_mark()))
        elif name in ("APPEND", "APPENDS", "SETITEM", "SETITEMS", "ADDITEMS"):
            self._add(name)
        elif name == "POP":
            if self.stack:
                self.stack.pop()
            else:
                self.pop_mark()
        elif name == "POP_MARK":
            self.pop_mark()
        elif name == "DUP":
            self.push(self.top())
        elif name == "MARK":
            self.metastack.append(self.stack)
            self.stack = []
        elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
            self.memo[arg] = self.top()
        elif name == "MEMOIZE":
            self.memo[len(self.memo)] = self.top()
        elif name in ("GET", "BINGET", "LONG_BINGET"):
            if arg not in self.memo:
                raise _ScanError(f"memo key {arg} read before it was written")
            self.push(self.memo[arg])
        else:
            self._step_objects(name, arg, f)

    def _add(self, name: str) -> None:
        if name == "APPEND":
            items = [self.pop()]
        elif name == "SETITEM":
            value, key = self.pop(), self.pop()
            items = [key, value]
        else:
            items = self.pop_mark()
        target = self.top()
        if isinstance(target, _List) and name.startswith("APPEND"):
            target.items.extend(items)
        elif isinstance(target, _Dict) and name.startswith("SETITEM"):
            target.pairs.extend(zip(items[::2], items[1::2], strict=False))
        elif not isinstance(target, _Obj) or target.cls is None:
            raise _ScanError(f"{name} on a {type(target).__name__}")

    def _step_objects(self, name: str, arg: Any, f: io.BytesIO) -> None:
        if name in ("GLOBAL", "INST"):
            module, _, gname = arg.partition(" ")
            cls = self.check(_import_name(module, gname, self.proto))
            if name == "GLOBAL":
                self.push(cls)
            else:
                items = self.pop_mark()
                self.push(self.instance(cls, tuple(items), not items))
        elif name == "STACK_GLOBAL":
            gname, module = self.pop(), self.pop()
            if type(gname) is not str or type(module) is not str:
                raise _ScanError("STACK_GLOBAL without two strings before it")
            self.push(self.check(_import_name(module, gname, self.proto)))
        elif name == "OBJ":
            items = self.pop_mark()
            if not items:
                raise _ScanError("OBJ without a class")
            self.push(self.instance(items[0], tuple(items[1:]), len(items) == 1))
        elif name in ("REDUCE", "NEWOBJ"):
            args, func = self.pop(), self.pop()
            if not isinstance(args, tuple | _List):
                raise _ScanError(f"{name} arguments are not a tuple")
            args = tuple(args.items) if isinstance(args, _List) else args
            if (
                name == "REDUCE"
                and isinstance(func, _Global)
                and func.name == "copyreg._reconstructor"
                and args
                and isinstance(args[0], _Global)
            ):
                base = args[1] if len(args) > 1 else None
                plain = isinstance(base, _Global) and base.name == "builtins.object"
                self.push(_Obj(args[0], args, plain))
            else:
                self.push(self.instance(func, args, name == "NEWOBJ"))
        elif name == "NEWOBJ_EX":
            _kwargs, args, cls = self.pop(), self.pop(), self.pop()
            self.push(self.instance(cls, args, True))
        elif name == "BUILD":
            state = self.pop()
            target = self.top()
            if not isinstance(target, _Obj) or target.cls is None:
                raise _ScanError(f"BUILD on a {type(target).__name__}, not an instance")
            self._build(target, state)
            if self.joblib and self.depth == 0 and target.cls.name == JOBLIB_WRAPPER:
                self.stack[-1] = self._skip_array(target, f)
        else:  # PERSID, BINPERSID, EXT1/2/4, NEXT_BUFFER, READONLY_BUFFER, ...
            raise _ScanError(f"opcode {name} is not allowed")

    @staticmethod
    def _build(target: _Obj, state: Any) -> None:
        target.states.append(state)
        strict = target.cls is not None and target.cls.name == JOBLIB_WRAPPER
        slots = None
        if isinstance(state, tuple) and len(state) == 2:
            state, slots = state
        for part in (state, slots):
            if isinstance(part, _Dict):
                for k, v in part.pairs:
                    if type(k) is str:
                        target.attrs[k] = v
                    elif strict:
                        raise _ScanError("a joblib array wrapper with a non-string attribute")
            elif strict and part is not None:
                raise _ScanError("a joblib array wrapper whose state is not a plain dict")

    def _skip_array(self, wrapper: _Obj, f: io.BytesIO) -> _Obj:
        """Move ``f`` past the bytes joblib writes after a NumpyArrayWrapper."""
        self.report.arrays += 1
        a = wrapper.attrs
        if not wrapper.via_new:
            raise _ScanError("a joblib array wrapper built by calling its constructor")
        shape, order, dtype = a.get("shape"), a.get("order"), a.get("dtype")
        if not isinstance(shape, tuple) or not all(type(s) is int and s >= 0 for s in shape):
            raise _ScanError("a joblib array without a valid shape")
        if order not in ("C", "F"):
            raise _ScanError("a joblib array without a valid order")
        if not isinstance(dtype, _Obj):
            raise _ScanError("a joblib array whose dtype is not a numpy.dtype")
        real = _real_dtype(dtype)
        if real.hasobject:
            # joblib reads a nested pickle from the raw file with a fresh unpickler
            _Machine(self.report, self.allowed, joblib=False, depth=self.depth + 1).run(f)
            return _Obj(_Global("numpy.ndarray"))
        if a.get("numpy_array_alignment_bytes") is not None:
            pad = f.read(1)
            if len(pad) != 1:
                raise _ScanError("joblib array padding is truncated")
            f.seek(pad[0], io.SEEK_CUR)
        count = int(np.prod(shape, dtype=object)) if shape else 1
        end = f.tell() + count * real.itemsize
        if end > len(f.getbuffer()):
            raise _ScanError("joblib array bytes are truncated")
        f.seek(end)
        return _Obj(_Global("numpy.ndarray"))


def _real_dtype(dtype: _Obj, depth: int = 0) -> Any:
    """Rebuild a pickled ``numpy.dtype`` exactly as the unpickler will, from primitives only.

    ``np.dtype(*args).__setstate__(state)`` is what loading does; doing it here lets numpy
    (not a re-implementation) say how many bytes an array holds and whether it holds objects.
    """
    if depth > _MAX_NESTING or dtype.cls is None or dtype.cls.name != "numpy.dtype":
        raise _ScanError("a joblib array whose dtype is not a plain numpy.dtype")
    if len(dtype.states) > 1 or not isinstance(dtype.args, tuple):
        raise _ScanError("a joblib array dtype with an unusual pickled form")
    try:
        real = np.dtype(*_concrete(dtype.args, depth))
        if dtype.states:
            real.__setstate__(_concrete(dtype.states[0], depth))
    except (TypeError, ValueError, KeyError) as exc:
        raise _ScanError(f"a joblib array dtype numpy cannot rebuild ({exc})") from exc
    return real


def _concrete(value: Any, depth: int) -> Any:
    if value is None or type(value) in (int, str, bytes, bool):
        return value
    if isinstance(value, tuple):
        return tuple(_concrete(v, depth) for v in value)
    if isinstance(value, _Dict):
        return {_concrete(k, depth): _concrete(v, depth) for k, v in value.pairs}
    if isinstance(value, _Obj):
        return _real_dtype(value, depth + 1)
    raise _ScanError("a joblib array dtype built from unexpected values")
