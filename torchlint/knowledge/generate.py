"""Regenerate the API knowledge base from the real packages.

Run it with a Python that has the release to record installed (never at lint
time: linting reads only the files this writes)::

    /path/to/venv/bin/python -m torchlint.knowledge.generate            # every package it can import
    /path/to/venv/bin/python torchlint/knowledge/generate.py --out DIR  # without installing torchlint

One gzipped JSON file per package and version lands in
``torchlint/knowledge/data/`` (``torch-2.13.0.json.gz``,
``torchvision-0.29.1.json.gz``, ...), written one entry per line so that
torchlint can index it without decoding it (:func:`encode`). Rerunning for a
version overwrites its file; other versions' files are kept, so a new release
is one more run in a venv that has it. The format is documented in
``torchlint/knowledge/store.py``.

What is recorded, for each public module of the package that is loaded once
the package's main modules are imported:

* ``modules``: every attribute name (``dir()``), each with what it is: a
  submodule, a class or function (by its defining qualified name), or a value;
  plus the names of submodules that exist on disk but are not imported yet
  (``from torch.utils import tensorboard`` works without being in ``dir``),
  and whether the module has a ``__getattr__`` (then a missing name proves nothing).
* ``classes``: bases, own attributes (``__dict__``), annotations, the
  attributes instances get (``self.x = ...`` / ``register_buffer("x")`` in any
  method of the class, read from its source), whether instances are open
  (``__getattr__`` beyond ``nn.Module``'s, ``setattr(self, ...)``), and the
  constructor's signature.
* ``functions``: signatures (parameter names, kinds, defaults; ``None`` where
  Python cannot tell, as for most of torch's C functions) and, for a
  ``**kwargs`` that is only forwarded to another recorded callable, the
  keywords that callable takes.
* ``builders`` (torchvision models): the class a builder returns and the
  types of the model's direct children, found by building it on the ``meta``
  device (no memory, no weights).
"""

from __future__ import annotations

import argparse
import ast
import gzip
import importlib
import inspect
import json
import os
import pkgutil
import sys
import textwrap
import types
import warnings
from pathlib import Path
from typing import Any

DATA_DIR = Path(__file__).resolve().parent / "data"

# The modules whose public API users write; everything they load is recorded too.
ENTRY_MODULES = {
    "torch": [
        "torch", "torch.nn", "torch.nn.functional", "torch.nn.init", "torch.nn.utils", "torch.nn.utils.rnn",
        "torch.nn.utils.parametrize", "torch.nn.utils.parametrizations", "torch.nn.utils.prune",
        "torch.nn.utils.stateless", "torch.nn.parallel", "torch.nn.attention", "torch.nn.modules",
        "torch.optim", "torch.optim.lr_scheduler", "torch.optim.swa_utils", "torch.utils", "torch.utils.data",
        "torch.utils.data.distributed", "torch.utils.checkpoint", "torch.utils.hooks", "torch.amp",
        "torch.cuda", "torch.cuda.amp", "torch.cpu", "torch.cpu.amp", "torch.backends", "torch.backends.cuda",
        "torch.backends.cudnn", "torch.backends.mps", "torch.linalg", "torch.fft", "torch.special",
        "torch.distributions", "torch.func", "torch.autograd", "torch.autograd.functional", "torch.jit",
        "torch.onnx", "torch.hub", "torch.testing", "torch.distributed", "torch.multiprocessing", "torch.sparse",
        "torch.ao.quantization", "torch.quantization", "torch.profiler", "torch.export", "torch.compiler",
        "torch.random", "torch.serialization", "torch.types", "torch.mps", "torch.xpu", "torch.overrides",
        "torch.library", "torch.masked", "torch.nested", "torch.signal", "torch.utils.benchmark",
        "torch.utils.cpp_extension", "torch.utils.dlpack", "torch.utils.tensorboard", "torch.futures",
        "torch.fx", "torch.package", "torch.monitor", "torch.accelerator",
    ],
    "torchvision": [
        "torchvision", "torchvision.models", "torchvision.models.detection", "torchvision.models.segmentation",
        "torchvision.models.video", "torchvision.models.quantization", "torchvision.models.optical_flow",
        "torchvision.transforms", "torchvision.transforms.functional", "torchvision.transforms.v2",
        "torchvision.transforms.v2.functional", "torchvision.datasets", "torchvision.ops", "torchvision.io",
        "torchvision.utils", "torchvision.tv_tensors", "torchvision.models.feature_extraction",
    ],
    "torchaudio": [
        "torchaudio", "torchaudio.transforms", "torchaudio.functional", "torchaudio.models", "torchaudio.datasets",
        "torchaudio.pipelines", "torchaudio.io", "torchaudio.utils", "torchaudio.compliance.kaldi",
    ],
}

KIND_OF_PARAM = {
    inspect.Parameter.POSITIONAL_ONLY: "0",
    inspect.Parameter.POSITIONAL_OR_KEYWORD: "1",
    inspect.Parameter.VAR_POSITIONAL: "2",
    inspect.Parameter.KEYWORD_ONLY: "3",
    inspect.Parameter.VAR_KEYWORD: "4",
}


def _public(module_name: str) -> bool:
    return not any(part.startswith("_") for part in module_name.split("."))


def _qualname(obj: Any) -> str | None:
    module = getattr(obj, "__module__", None)
    qual = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None)
    if not isinstance(module, str) or not isinstance(qual, str) or "<" in qual:
        return None
    return f"{module}.{qual}"


def _default(value: Any) -> str:
    if value is inspect.Parameter.empty:
        return ""
    text = repr(value) if isinstance(value, (bool, int, float, str, type(None))) else "..."
    return "=" + (text if len(text) <= 40 else "...")


def signature(obj: Any) -> list[str] | None:
    """``["1in_features", "1bias=True", "3device=None"]``: kind digit, name, default; None when unknown."""
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError, RuntimeError):
        return None
    params = list(sig.parameters.values())
    return [f"{KIND_OF_PARAM[p.kind]}{p.name}{_default(p.default)}" for p in params]


# --- reading sources ------------------------------------------------------------------


def _source_tree(obj: Any) -> ast.AST | None:
    try:
        source = textwrap.dedent(inspect.getsource(obj))
        return ast.parse(source)
    except (OSError, TypeError, SyntaxError, IndentationError):
        return None


def _self_attributes(cls: type) -> tuple[set[str], bool]:
    """Attributes the methods of ``cls`` (own body only) set on ``self``; True when some are dynamic."""
    tree = _source_tree(cls)
    names: set[str] = set()
    dynamic = False
    if tree is None:
        return names, True
    for node in _method_nodes(tree):
        if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                for el in ast.walk(t):
                    if isinstance(el, ast.Attribute) and isinstance(el.value, ast.Name) and el.value.id == "self":
                        names.add(el.attr)
        elif isinstance(node, ast.Call):
            func = node.func
            fname = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            if fname in ("register_buffer", "register_parameter", "register_module", "add_module", "__setattr__", "setattr"):
                args = node.args[1:] if fname == "setattr" or (
                    fname == "__setattr__" and isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name)
                    and func.value.id == "object"
                ) else node.args
                if args and isinstance(args[0], ast.Constant) and isinstance(args[0].value, str):
                    names.add(args[0].value)
                else:
                    dynamic = True
            elif fname == "update" and isinstance(func, ast.Attribute) and isinstance(func.value, ast.Attribute) and func.value.attr == "__dict__":
                dynamic = True
    return names, dynamic


# Methods that implement attribute access itself (or restore pickled state): the
# names they set come from elsewhere, so their dynamic sets prove nothing.
_PLUMBING = {"__setattr__", "__getattr__", "__delattr__", "__setstate__", "__getstate__", "__reduce__", "__reduce_ex__"}


def _method_nodes(tree: ast.AST):
    """Every node of the class's methods, except the attribute-access plumbing."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name in _PLUMBING:
            continue
        yield node
        stack.extend(ast.iter_child_nodes(node))


def _module_level_names(module: types.ModuleType) -> tuple[set[str], bool]:
    """Every name bound at the top level of the module's source (all branches), and whether it binds names dynamically."""
    try:
        tree = ast.parse(inspect.getsource(module))
    except Exception:  # noqa: BLE001 - odd module objects (torch.classes) raise anything
        return set(), False
    names: set[str] = set()
    dynamic = False
    stack: list[ast.AST] = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                names.add((alias.asname or alias.name).split(".")[0])
            continue
        for sub in ast.walk(node) if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)) else ():
            if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Store):
                names.add(sub.id)
        if isinstance(node, ast.Expr) or isinstance(node, ast.Assign):
            for sub in ast.walk(node):
                if isinstance(sub, ast.Call) and isinstance(sub.func, ast.Name) and sub.func.id in ("globals", "setattr"):
                    dynamic = True
        if isinstance(node, (ast.If, ast.Try, ast.With, ast.For, ast.While)):
            for field in ("body", "orelse", "finalbody", "handlers"):
                stack.extend(getattr(node, field, []) or [])
        if isinstance(node, ast.ExceptHandler):
            stack.extend(node.body)
    return names, dynamic


_CLASS_COUNTS: dict[str, dict[str, int]] = {}


def _defined_twice(cls: type) -> bool:
    """Is the class defined more than once in its module (``if HAS_PYDOT: class X ... else: class X`` stubs)?"""
    module = sys.modules.get(getattr(cls, "__module__", "") or "")
    if module is None:
        return False
    counts = _CLASS_COUNTS.get(module.__name__)
    if counts is None:
        counts = {}
        try:
            tree = ast.parse(inspect.getsource(module))
            for node in ast.walk(tree):
                if isinstance(node, ast.ClassDef):
                    counts[node.name] = counts.get(node.name, 0) + 1
        except Exception:  # noqa: BLE001
            pass
        _CLASS_COUNTS[module.__name__] = counts
    return counts.get(cls.__name__, 0) > 1


def _forwarded_kwargs(func: Any) -> list[str] | None:
    """For ``def f(a, **kwargs): g(..., **kwargs)`` where kwargs is used only there: g's dotted source text."""
    tree = _source_tree(func)
    if tree is None or not tree.body or not isinstance(tree.body[0], (ast.FunctionDef, ast.AsyncFunctionDef)):
        return None
    fdef = tree.body[0]
    kw = fdef.args.kwarg.arg if fdef.args.kwarg else None
    if kw is None:
        return None
    targets: list[str] = []
    uses = 0
    for node in ast.walk(fdef):
        if isinstance(node, ast.Name) and node.id == kw:
            uses += 1
        if isinstance(node, ast.Call):
            for k in node.keywords:
                if k.arg is None and isinstance(k.value, ast.Name) and k.value.id == kw:
                    targets.append(ast.unparse(node.func))
    if len(targets) != 1 or uses != 1:
        return None
    return targets


# --- recording ----------------------------------------------------------------------


class Recorder:
    def __init__(self, package: str) -> None:
        self.package = package
        self.modules: dict[str, dict[str, Any]] = {}
        self.classes: dict[str, dict[str, Any]] = {}
        self.functions: dict[str, dict[str, Any]] = {}
        self.builders: dict[str, dict[str, Any]] = {}
        self._class_objs: dict[str, type] = {}

    def record_module(self, name: str, module: types.ModuleType) -> None:
        # A module object of a ModuleType subclass with its own __getattr__ (torch.ops,
        # torch.backends.cudnn's PropModule, config modules) answers names dir() does not list.
        class_getattr = type(module) is not types.ModuleType and any(
            "__getattr__" in vars(k) for k in type(module).__mro__ if k is not types.ModuleType and k is not object
        )
        entry: dict[str, Any] = {"names": {}, "submodules": [], "open": "__getattr__" in vars(module) or class_getattr}
        if name == "torch":
            # torch.__getattr__ serves deprecated aliases, lazy submodules and set_vital, nothing else.
            served = set(getattr(module, "_deprecated_attrs", {})) | set(getattr(module, "_lazy_modules", ())) | {"set_vital"}
            for attr in served:
                entry["names"].setdefault(attr, "v")
            entry["open"] = False
        for attr in sorted(dir(module)):
            if attr in entry["names"]:
                continue
            try:
                value = getattr(module, attr)
            except Exception:
                entry["names"][attr] = "?"
                continue
            entry["names"][attr] = self.describe(value)
        # A module whose class was swapped for a ModuleType subclass serves that class's
        # properties and methods too (torch.utils.deterministic.fill_uninitialized_memory).
        if type(module) is not types.ModuleType:
            for attr in dir(type(module)):
                if attr not in dir(types.ModuleType):
                    entry["names"].setdefault(attr, "v")
        # Names the source binds at module level in any branch (``if HAS_X: def f``, ``try: import``):
        # another environment may have them, so they are not missing.
        bound, dynamic = _module_level_names(module)
        for attr in bound:
            entry["names"].setdefault(attr, "v")
        if dynamic:
            entry["open"] = True
        path = getattr(module, "__path__", None)
        if path:
            try:
                entry["submodules"] = sorted(m.name for m in pkgutil.iter_modules(path))
            except Exception:
                pass
        self.modules[name] = entry

    def describe(self, value: Any) -> str:
        """``m:torch.nn`` submodule, ``c:<qualname>`` class, ``f:<qualname>`` callable, ``v`` anything else."""
        if isinstance(value, types.ModuleType):
            return "m:" + value.__name__
        if isinstance(value, type):
            q = _qualname(value)
            if q is None:
                return "v"
            self.record_class(q, value)
            return "c:" + q
        if callable(value):
            q = _qualname(value)
            if q is None or not isinstance(value, (types.FunctionType, types.BuiltinFunctionType, types.MethodType)):
                q = q if q is not None and hasattr(value, "__wrapped__") else None
            if q is None:
                return "v"
            if q not in self.functions:
                self.functions[q] = self.function_entry(value)
            return "f:" + q
        return "v"

    def function_entry(self, func: Any) -> dict[str, Any]:
        entry: dict[str, Any] = {"sig": signature(func)}
        if entry["sig"] and any(p.startswith("4") for p in entry["sig"]):
            fwd = _forwarded_kwargs(func)
            if fwd:
                entry["kwargs_to"] = fwd[0]
        return entry

    def record_class(self, q: str, cls: type) -> None:
        if q in self.classes:
            return
        entry: dict[str, Any] = {}
        self.classes[q] = entry
        self._class_objs[q] = cls
        entry["bases"] = [b for b in (_qualname(base) for base in cls.__bases__) if b]
        for base in cls.__bases__:
            bq = _qualname(base)
            if bq:
                self.record_class(bq, base)
        own = sorted(k for k in vars(cls) if isinstance(k, str))
        entry["attrs"] = own
        annotations = vars(cls).get("__annotations__", {})
        entry["annotations"] = sorted(k for k in annotations if isinstance(k, str)) if isinstance(annotations, dict) else []
        slots = vars(cls).get("__slots__", ())
        if isinstance(slots, str):
            slots = (slots,)
        inst, dynamic = (set(), False)
        if _belongs_to_package(cls):
            inst, dynamic = _self_attributes(cls)
        inst.update(s for s in slots if isinstance(s, str))
        entry["inst"] = sorted(inst)
        # __getattr__ beyond nn.Module's own (which only serves what __init__ registered).
        # nn.Module's own dynamic sets and __getattr__ are the registration machinery:
        # they serve only names that some __init__ registered.
        if q == "torch.nn.modules.module.Module":
            entry["open"] = False
        else:
            entry["open"] = bool(dynamic or "__getattr__" in vars(cls) or _defined_twice(cls))
        # Attributes a metaclass gives the class itself (torch.distributed.group.WORLD).
        meta = type(cls)
        if meta is not type:
            if "__getattr__" in vars(meta):
                entry["open"] = True
            entry["meta"] = sorted(k for k in dir(meta) if not k.startswith("__") and k not in dir(type))
        if "__init__" in vars(cls) or "__new__" in vars(cls):
            init = vars(cls).get("__init__") or vars(cls).get("__new__")
            sig = signature(init) if init is not None else None
            if sig is not None and sig and sig[0][1:] in ("self", "cls"):
                sig = sig[1:]
            entry["init"] = sig
            if sig and any(p.startswith("4") for p in sig) and init is not None:
                fwd = _forwarded_kwargs(init)
                if fwd:
                    entry["kwargs_to"] = fwd[0]

    def record_builders(self, torch: Any) -> None:
        """torchvision's model builders: the class built and its direct children, built on the meta device."""
        try:
            from torchvision import models
        except Exception:
            return
        for name in models.list_models():
            for namespace in ("torchvision.models", "torchvision.models.detection", "torchvision.models.segmentation",
                              "torchvision.models.video", "torchvision.models.optical_flow",
                              "torchvision.models.quantization"):
                mod = sys.modules.get(namespace)
                fn = getattr(mod, name, None) if mod is not None else None
                if fn is None:
                    continue
                q = _qualname(fn)
                if q is None or q in self.builders:
                    continue
                # No checkpoint of any kind: a backbone's weights would be downloaded.
                kwargs = {"weights": None}
                if "weights_backbone" in inspect.signature(fn).parameters:
                    kwargs["weights_backbone"] = None
                try:
                    with warnings.catch_warnings(), torch.device("meta"):
                        warnings.simplefilter("ignore")
                        model = fn(**kwargs)
                except Exception as exc:  # noqa: BLE001 - record what we can
                    print(f"  builder {q}: {type(exc).__name__}: {exc}", file=sys.stderr)
                    continue
                cls_q = _qualname(type(model))
                if cls_q is None:
                    continue
                self.record_class(cls_q, type(model))
                children = {}
                for child_name, child in model.named_children():
                    cq = _qualname(type(child))
                    if cq:
                        self.record_class(cq, type(child))
                        children[child_name] = cq
                self.builders[q] = {"returns": cls_q, "children": children}


def _belongs_to_package(cls: type) -> bool:
    module = getattr(cls, "__module__", "") or ""
    return module.split(".")[0] in ENTRY_MODULES


def generate(package: str, out_dir: Path) -> Path | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            top = importlib.import_module(package)
    except Exception as exc:  # noqa: BLE001
        print(f"{package}: not importable ({type(exc).__name__}: {exc}); skipped", file=sys.stderr)
        return None
    version = str(getattr(top, "__version__", "0")).split("+")[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in ENTRY_MODULES[package]:
            try:
                importlib.import_module(name)
            except Exception as exc:  # noqa: BLE001 - an optional dependency may be missing
                print(f"  {name}: {type(exc).__name__}: {exc}", file=sys.stderr)
    rec = Recorder(package)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in sorted(sys.modules):
            module = sys.modules[name]
            if name.split(".")[0] != package or not _public(name) or not isinstance(module, types.ModuleType):
                continue
            rec.record_module(name, module)
        if package == "torchvision":
            import torch

            rec.record_builders(torch)
    doc = {
        "format": 2,
        "package": package,
        "version": version,
        "python": f"{sys.version_info.major}.{sys.version_info.minor}",
        "modules": rec.modules,
        "classes": rec.classes,
        "functions": rec.functions,
        "builders": rec.builders,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{package}-{version}.json.gz"
    write(path, doc)
    print(f"{path}: {len(rec.modules)} modules, {len(rec.classes)} classes, {len(rec.functions)} functions, "
          f"{len(rec.builders)} builders, {os.path.getsize(path) // 1024} KiB", file=sys.stderr)
    return path


SECTIONS = ("builders", "classes", "functions", "modules")


def encode(doc: dict[str, Any]) -> bytes:
    """The file's text: one JSON document, one entry per line (format 2, see store.py)."""

    def dump(value: Any) -> str:
        return json.dumps(value, sort_keys=True, separators=(",", ":"))

    head = {k: v for k, v in doc.items() if k not in SECTIONS}
    present = [s for s in SECTIONS if s in doc]
    if not present:
        return (dump(head) + "\n").encode()
    lines = [dump(head)[:-1] + ","]
    for i, section in enumerate(present):
        lines.append(dump(section) + ":{")
        entries = sorted(doc[section].items())
        for j, (name, entry) in enumerate(entries):
            if not isinstance(entry, dict):
                raise ValueError(f"{section} {name!r}: an entry must be a JSON object")
            lines.append(dump(name) + ":" + dump(entry) + ("," if j < len(entries) - 1 else ""))
        lines.append("}," if i < len(present) - 1 else "}")
    lines.append("}")
    return ("\n".join(lines) + "\n").encode()


def write(path: Path, doc: dict[str, Any]) -> None:
    # mtime=0: the same API gives the same bytes.
    with open(path, "wb") as fh, gzip.GzipFile(fileobj=fh, mode="wb", compresslevel=9, mtime=0) as gz:
        gz.write(encode(doc))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("packages", nargs="*", default=list(ENTRY_MODULES), help="default: torch torchvision torchaudio")
    parser.add_argument("--out", type=Path, default=DATA_DIR)
    args = parser.parse_args(argv)
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
    for package in args.packages:
        generate(package, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
