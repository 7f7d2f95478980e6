"""The confirmation harness: runs INSIDE the sandbox only, next to the user's extracted code.

It imports torch at module level, like ``torchlint.runtime.fakedevice``: only
the sandboxed worker imports it (to run a confirmation program, see
``torchlint.runtime.extract``); nothing on the linter's side ever does.

The generated snippet is two lines: import this module, call :func:`main` with
the configuration, the user's source and the extraction plan. :func:`main`

* installs stand-ins: synthetic datasets (no network, no files), a small fake
  ``torchvision`` when the real one is missing, tolerant imports, a
  ``DataLoader`` that uses no worker processes and batches of 2, and no-ops for
  ``input()``, ``time.sleep`` and ``torch.save``;
* rebuilds the user's program from the plan (:func:`torchlint.runtime.extract.apply_plan`)
  and compiles it under the user's file name, so tracebacks and line numbers
  are the user's own;
* runs it and watches the flagged code through ``_torchlint.target(...)``
  blocks: whether it was reached, the exception it raised, the warnings it
  emitted, and rule-specific measurements (TL101's gradients, TL301's batch);
* stops the program as soon as the flagged code has done what the
  confirmation needs (:class:`Stop`), and reports one JSON-able payload.
"""

from __future__ import annotations

import builtins
import contextlib
import math
import os
import sys
import traceback
import types
import warnings
from typing import Any, Callable

os.environ.setdefault("MPLBACKEND", "Agg")

import torch  # noqa: E402  (sandbox-only module; see the docstring)
from torch.utils.data import DataLoader, Dataset  # noqa: E402

from torchlint.runtime import extract  # noqa: E402  (the standard library only)


class Stop(BaseException):
    """The confirmation has what it needs: unwind the user's program.

    A BaseException, so that the user's own ``except Exception:`` blocks do not
    swallow it.
    """


class WeightsBlocked(RuntimeError):
    """Raised instead of downloading or loading pretrained weights."""


class _State:
    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.filename = config.get("filename", "<user code>")
        self.depth = 0  # > 0 while the flagged code runs
        self.reached = 0
        self.passed = 0
        self.target_exception: dict[str, Any] | None = None
        self.warnings: list[dict[str, Any]] = []
        self.notes: list[str] = []
        self.loops: dict[str, int] = {}
        self.measure: dict[str, Any] = {}
        self.stop_after = int(config.get("stop_after", 1))


STATE: _State = _State({})


# --------------------------------------------------------------------------
# What the transformed user code calls


class target:
    """``with _torchlint.target("T"): <flagged statement>``."""

    def __init__(self, tid: str = "T") -> None:
        self.tid = tid

    def __enter__(self) -> None:
        STATE.depth += 1
        STATE.reached += 1

    def __exit__(self, exc_type, exc, tb) -> bool:
        STATE.depth -= 1
        if exc is None:
            STATE.passed += 1
            if STATE.depth == 0 and _should_stop():
                raise Stop()
            return False
        if isinstance(exc, Stop):
            return False
        if STATE.target_exception is None:
            STATE.target_exception = _describe(exc)
        raise Stop() from exc


def _should_stop() -> bool:
    mode = STATE.config.get("mode")
    if mode == "tl101":
        return len(STATE.measure.get("steps", ())) >= 2
    if mode == "tl105":
        # The flagged mode (eval during training, or the converse on a later epoch) seen, or enough passes.
        want = STATE.config.get("expect_training")
        return any(c.get("training") == want for c in STATE.measure.get("calls", ())) or STATE.passed >= STATE.stop_after
    return STATE.passed >= STATE.stop_after


def loop(lid: str, iterable: Any, limit: int | None = None) -> Any:
    """A training loop's iterable, cut to a few iterations."""
    cap = limit if limit is not None else int(STATE.config.get("loop_limit", 2))
    count = 0
    if STATE.config.get("mode") == "tl101" and isinstance(iterable, (list, tuple, torch.Tensor)) and len(iterable):
        # A list of batches: the first one every time, like the DataLoader (same batch, same math).
        iterable = [iterable[0]] * cap
    for item in iterable:
        if count >= cap:
            break
        count += 1
        STATE.loops[lid] = STATE.loops.get(lid, 0) + 1
        if STATE.config.get("mode") == "tl101":
            # Each iteration starts from the same random state, so dropout and
            # any noise drawn in the loop repeat exactly on the next step.
            torch.manual_seed(0)
        yield item


def tick(lid: str, limit: int | None = None) -> bool:
    """``while _torchlint.tick("W") and (<condition>):``: a while loop cut short."""
    cap = limit if limit is not None else int(STATE.config.get("loop_limit", 2))
    done = STATE.loops.get(lid, 0)
    if done >= cap:
        return False
    STATE.loops[lid] = done + 1
    if STATE.config.get("mode") == "tl101":
        torch.manual_seed(0)
    return True


def next_(iterator: Any) -> Any:
    """``x.next()`` of another finding, run as the builtin ``next(x)``."""
    return next(iterator)


def moved(value: Any) -> Any:
    """Another finding's tensor, moved to the accelerator as its fix would (TL401)."""
    target = torch.device("cuda")
    if isinstance(value, torch.Tensor):
        return value.to(target)
    if isinstance(value, (list, tuple)):
        return type(value)(moved(v) for v in value)
    if isinstance(value, dict):
        return {k: moved(v) for k, v in value.items()}
    return value


def discarded(receiver: Any, result: Any) -> Any:
    """TL402: ``t.to(...)`` as a statement: what the call returned, next to the ``t`` it leaves behind."""

    def describe(value: Any) -> dict[str, Any]:
        if isinstance(value, torch.Tensor):
            return {"type": "Tensor", "device": str(value.device), "dtype": str(value.dtype).replace("torch.", "")}
        return {"type": type(value).__name__}

    STATE.measure["receiver"] = describe(receiver)
    STATE.measure["result"] = describe(result)
    STATE.measure["same_object"] = result is receiver
    return result


def compared(original: Callable[[], Any], fixed: Callable[[], Any]) -> Any:
    """TL601-TL603: the flagged expression's value next to its fix's, on the program's own values.

    Returns the original's value, so the program goes on as written.
    """
    value = original()
    try:
        other = fixed()
    except Exception as exc:  # noqa: BLE001 - reported as evidence
        STATE.measure["fixed_error"] = f"{type(exc).__name__}: {exc}"
        return value
    if not (isinstance(value, torch.Tensor) and isinstance(other, torch.Tensor)) or value.shape != other.shape:
        STATE.measure["kinds"] = [type(value).__name__, type(other).__name__]
        return value
    a, b = value.detach().double().cpu(), other.detach().double().cpu()
    both = torch.isfinite(a) & torch.isfinite(b)
    diff = (a - b).abs()
    scale = torch.maximum(a.abs(), b.abs())
    rel = torch.where(both & (scale > 0), diff / scale.clamp_min(1e-300), torch.zeros_like(diff))
    worst = int(rel.flatten().argmax()) if rel.numel() else 0
    STATE.measure.update(
        elements=int(a.numel()),
        dtype=str(value.dtype).replace("torch.", ""),
        max_relative=float(rel.max()) if rel.numel() else 0.0,
        max_absolute=float(torch.where(both, diff, torch.zeros_like(diff)).max()) if diff.numel() else 0.0,
        written=float(a.flatten()[worst]) if a.numel() else None,
        fixed=float(b.flatten()[worst]) if b.numel() else None,
        nonfinite_written=int((~torch.isfinite(a) & torch.isfinite(b)).sum()),
    )
    return value


def _graph_nodes(value: Any, limit: int = 200_000) -> int:
    """How many autograd nodes ``value``'s graph holds (the memory an accumulator keeps alive)."""
    roots = [v.grad_fn for v in (value if isinstance(value, (list, tuple)) else [value]) if isinstance(v, torch.Tensor)]
    seen: set[int] = set()
    stack = [r for r in roots if r is not None]
    while stack and len(seen) < limit:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack.extend(n for n, _ in node.next_functions if n is not None)
    return len(seen)


def accumulated(value: Any, old: Callable[[], Any]) -> Any:
    """TL102: ``acc += value`` / ``acc.append(value)``: the accumulator before each addition, and its graph."""
    try:
        acc = old()
    except Exception:  # noqa: BLE001 - not bound yet
        acc = None
    items = acc if isinstance(acc, (list, tuple)) else [acc]
    with_graph = [v for v in items if isinstance(v, torch.Tensor) and v.grad_fn is not None]
    STATE.measure.setdefault("accumulator", []).append(
        {
            "type": type(acc).__name__,
            "grad_fn": type(with_graph[-1].grad_fn).__name__ if with_graph else None,
            "with_graph": len(with_graph),
            "nodes": _graph_nodes(acc),
        }
    )
    if isinstance(value, torch.Tensor):
        STATE.measure["added_grad_fn"] = type(value.grad_fn).__name__ if value.grad_fn is not None else None
    return value


def in_eval(module: Any, thunk: Callable[[], Any]) -> Any:
    """TL109: the flagged call, twice, with its module switched to eval mode as evaluation would."""
    was = getattr(module, "training", None)
    if isinstance(module, torch.nn.Module):
        module.eval()
    try:
        first, second = thunk(), thunk()
    finally:
        if isinstance(module, torch.nn.Module) and was is not None:
            module.train(was)
    if isinstance(first, torch.Tensor) and isinstance(second, torch.Tensor) and first.shape == second.shape:
        STATE.measure.update(
            training=bool(getattr(module, "training", True)) if was is None else False,
            elements=int(first.numel()),
            zeroed=int((first == 0).sum()),
            runs_differ=not torch.equal(first, second),
        )
    return first


def activated_loss(act: str, kind: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
    """TL103: the loss as written, then the same loss on the activation's input (the logits).

    The flagged loss is called as written (the program goes on with its value). Its input is
    an activation's output ``p``; the logits it came from are recovered (``log p`` for a
    softmax, whose softmax is ``p`` again; ``logit(p)`` for a sigmoid), and the loss is
    computed both ways on them: as written (activation, then the loss) and as meant (the loss
    on the logits; ``log_softmax`` for NLL). Recorded: both losses, the gradient norms with
    respect to the logits, and the least loss the written form can reach (the activation's
    ideal output: the targets themselves).
    """
    result = fn(*args, **kwargs)
    rest = dict(kwargs)
    if args:
        inp, others = args[0], list(args[1:])
    else:
        inp, others = rest.pop("input", None), []
    if not isinstance(inp, torch.Tensor) or not inp.is_floating_point():
        return result
    measure = STATE.measure
    try:
        with torch.enable_grad():
            p = inp.detach().double()
            dim = 1 if p.dim() > 1 else 0
            if act == "softmax":
                measure["sums_to_one"] = bool(torch.allclose(p.sum(dim), torch.ones((), dtype=p.dtype), atol=1e-4))
                logits = p.clamp_min(1e-30).log()
                activate = lambda z: torch.softmax(z, dim)  # noqa: E731
            elif act == "log_softmax":
                # Log-probabilities are logits whose log_softmax is themselves.
                measure["sums_to_one"] = bool(torch.allclose(p.exp().sum(dim), torch.ones((), dtype=p.dtype), atol=1e-4))
                logits = p
                activate = lambda z: torch.log_softmax(z, dim)  # noqa: E731
            else:
                measure["in_unit_range"] = bool(((p >= 0) & (p <= 1)).all())
                logits = torch.logit(p.clamp(1e-12, 1 - 1e-12))
                activate = torch.sigmoid
            cast = lambda t: t.to(inp.dtype)  # noqa: E731
            z = logits.clone().requires_grad_()
            written = fn(cast(activate(z)), *others, **rest)
            (g_written,) = torch.autograd.grad(written.sum(), z)
            z2 = logits.clone().requires_grad_()
            meant = fn(cast(torch.log_softmax(z2, dim) if kind == "nll" else z2), *others, **rest)
            (g_meant,) = torch.autograd.grad(meant.sum(), z2)
            measure.update(
                loss_written=float(written.detach().sum()),
                loss_meant=float(meant.detach().sum()),
                grad_written=float(g_written.norm()),
                grad_meant=float(g_meant.norm()),
                shape=list(inp.shape),
            )
            target = others[0] if others else rest.get("target")
            ideal = None
            if act == "softmax" and isinstance(target, torch.Tensor) and not target.is_floating_point() and p.dim() == 2:
                ideal = torch.nn.functional.one_hot(target.long(), p.shape[1]).to(inp.dtype)
            elif act == "sigmoid" and isinstance(target, torch.Tensor) and target.shape == p.shape:
                ideal = target.to(inp.dtype)
            if ideal is not None:
                floor_args = [target, *others[1:]] if others else []
                measure["floor_written"] = float(fn(ideal, *floor_args, **rest).detach().sum())
    except Exception as exc:  # noqa: BLE001 - reported as evidence
        measure["compare_error"] = f"{type(exc).__name__}: {exc}"
    return result


def _mode_layers(module: Any) -> dict[str, int]:
    kinds = {"dropout": 0, "batchnorm": 0}
    for m in module.modules():
        if isinstance(m, torch.nn.modules.dropout._DropoutNd):
            kinds["dropout"] += 1
        elif isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            kinds["batchnorm"] += 1
    return kinds


def moded(module: Any, thunk: Callable[[], Any]) -> Any:
    """TL105: the model call as written, with ``module.training`` read while it runs; then once more
    (without a graph) to see whether two passes agree, and whether batch norm's running statistics moved."""
    if not isinstance(module, torch.nn.Module):
        return thunk()
    stats = [m.running_mean.clone() for m in module.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.running_mean is not None]
    first = thunk()
    record = {"training": bool(module.training), **_mode_layers(module), "module": type(module).__name__}
    with torch.no_grad():
        second = thunk()
    after = [m.running_mean for m in module.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.running_mean is not None]
    record["stats_moved"] = any(not torch.equal(a, b) for a, b in zip(stats, after))
    a, b = first, second
    while isinstance(a, (tuple, list)) and a and isinstance(b, (tuple, list)) and b:
        a, b = a[0], b[0]
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.shape == b.shape:
        record["runs_differ"] = not torch.equal(a.detach(), b.detach())
    STATE.measure.setdefault("calls", []).append(record)
    return first


def watched(obj: Any) -> Any:
    """TL206: the object whose ``require_grad`` the flagged line sets; looked at after the line ran."""
    STATE.measure["_watched"] = obj
    if STATE.config.get("mode") == "tl107" and isinstance(obj, torch.nn.Module) and "_hooks" not in STATE.measure:
        # TL107: count what the call runs of the hooks a user (or a library) would register.
        calls = STATE.measure["_hooks"] = {"pre": 0, "post": 0}
        obj.register_forward_pre_hook(lambda *a: calls.__setitem__("pre", calls["pre"] + 1))
        obj.register_forward_hook(lambda *a: calls.__setitem__("post", calls["post"] + 1))
        STATE.measure["module"] = type(obj).__name__
    if isinstance(obj, torch.Tensor):
        STATE.measure["requires_grad_before"] = bool(obj.requires_grad)
    return obj


def _after_target() -> None:
    obj = STATE.measure.pop("_watched", None)
    if STATE.config.get("mode") == "tl110" and isinstance(obj, torch.nn.Module):
        # TL110: the layer the flagged line built, called once as the model would call it.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            obj(torch.randn(2, 3))
        STATE.measure["module"] = type(obj).__name__
        STATE.measure["probe_warnings"] = [str(w.message) for w in caught]
    if STATE.config.get("mode") == "tl108" and isinstance(obj, torch.nn.Module):
        # TL108: the module its __init__ built, used as a training script would.
        STATE.measure["module"] = type(obj).__name__
        try:
            list(obj.parameters())
        except AttributeError as exc:
            STATE.measure["use_error"] = f"AttributeError: {exc}"
        return
    hooks = STATE.measure.pop("_hooks", None)
    if hooks is not None:
        STATE.measure["hook_calls"] = dict(hooks)
    if obj is not None:
        STATE.measure["watched_type"] = type(obj).__name__
        if isinstance(obj, torch.Tensor):
            STATE.measure["requires_grad_after"] = bool(obj.requires_grad)
            STATE.measure["require_grad_after"] = repr(getattr(obj, "require_grad", None))
        elif isinstance(obj, torch.optim.Optimizer) or isinstance(obj, torch.nn.Module):
            # TL702: what zero_grad(set_to_none=False) left in .grad.
            if isinstance(obj, torch.nn.Module):
                params = list(obj.parameters())
            else:
                params = [p for group in obj.param_groups for p in group["params"]]
            grads = [p.grad for p in params if p.grad is not None]
            STATE.measure["parameters"] = len(params)
            STATE.measure["zero_grads"] = sum(1 for g in grads if not bool(g.any()))
            STATE.measure["none_grads"] = len(params) - len(grads)
            STATE.measure["zero_grad_bytes"] = sum(g.numel() * g.element_size() for g in grads if not bool(g.any()))


def skipped(what: str) -> None:
    """Stands in for a statement the extraction left out (a checkpoint load)."""
    if what not in STATE.notes:
        STATE.notes.append(what)


class _Missing:
    """An import that failed: harmless until the code actually uses it."""

    def __init__(self, name: str, error: str) -> None:
        object.__setattr__(self, "_tl_name", name)
        object.__setattr__(self, "_tl_error", error)

    def _fail(self, *args: Any, **kwargs: Any) -> Any:
        raise ModuleNotFoundError(object.__getattribute__(self, "_tl_error"))

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__") and attr.endswith("__"):
            raise AttributeError(attr)
        return self._fail()

    __call__ = _fail
    __iter__ = _fail


def missing(name: str, exc: BaseException) -> _Missing:
    return _Missing(name, str(exc))


# --------------------------------------------------------------------------
# Synthetic data

# name -> (channels, height, width, classes, train length, test length)
_DATASETS: dict[str, tuple[int, int, int, int, int, int]] = {
    "MNIST": (1, 28, 28, 10, 60000, 10000),
    "FashionMNIST": (1, 28, 28, 10, 60000, 10000),
    "KMNIST": (1, 28, 28, 10, 60000, 10000),
    "QMNIST": (1, 28, 28, 10, 60000, 10000),
    "EMNIST": (1, 28, 28, 47, 112800, 18800),
    "CIFAR10": (3, 32, 32, 10, 50000, 10000),
    "CIFAR100": (3, 32, 32, 100, 50000, 10000),
    "SVHN": (3, 32, 32, 10, 73257, 26032),
    "STL10": (3, 96, 96, 10, 5000, 8000),
    "Omniglot": (1, 105, 105, 964, 19280, 13180),
    "USPS": (1, 16, 16, 10, 7291, 2007),
    "FakeData": (3, 224, 224, 10, 1000, 1000),
    "ImageFolder": (3, 224, 224, 2, 64, 64),
    "DatasetFolder": (3, 224, 224, 2, 64, 64),
    "ImageNet": (3, 224, 224, 1000, 1281167, 50000),
    "Food101": (3, 224, 224, 101, 75750, 25250),
    "Flowers102": (3, 224, 224, 102, 1020, 6149),
    "OxfordIIITPet": (3, 224, 224, 37, 3680, 3669),
    "Caltech101": (3, 224, 224, 101, 8677, 8677),
    "Places365": (3, 256, 256, 365, 1803460, 36500),
}


def _is_train(args: tuple, kwargs: dict) -> bool:
    if "train" in kwargs:
        return bool(kwargs["train"])
    split = kwargs.get("split")
    if isinstance(split, str):
        return split.startswith("train")
    if len(args) > 1 and isinstance(args[1], bool):
        return args[1]
    return True


class SyntheticImages(Dataset):
    """Stands in for a torchvision dataset: same sample format, random pixels, no files."""

    def __init__(self, name: str, args: tuple, kwargs: dict) -> None:
        spec = _DATASETS.get(name)
        if spec is None:
            spec = (3, 224, 224, 10, 1000, 1000)
            _note(f"{name}: unknown to torchlint, synthetic 3×224×224 images")
        channels, height, width, classes, n_train, n_test = spec
        if name == "FakeData":
            size = kwargs.get("image_size")
            if size:
                channels, height, width = size
            classes = kwargs.get("num_classes", classes)
            n_train = n_test = kwargs.get("size", n_train)
        self.name = name
        self.channels, self.height, self.width = channels, height, width
        self.transform = kwargs.get("transform")
        self.target_transform = kwargs.get("target_transform")
        if self.transform is None and name in ("ImageFolder", "DatasetFolder") and len(args) > 1:
            self.transform = args[1]
        self.train = _is_train(args, kwargs)
        self.length = n_train if self.train else n_test
        self.classes = [f"class{i}" for i in range(classes)]
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}
        self.root = kwargs.get("root", args[0] if args else "data")
        _note(f"{name}: synthetic {channels}×{height}×{width} images, {classes} classes (no download)")

    def __len__(self) -> int:
        return self.length

    def _raw(self, index: int) -> Any:
        g = torch.Generator().manual_seed(index)
        pixels = torch.rand(self.channels, self.height, self.width, generator=g)
        if _REAL_TORCHVISION:
            try:
                from PIL import Image
            except ImportError:  # pragma: no cover - torchvision depends on PIL
                return pixels
            array = (pixels * 255).to(torch.uint8).permute(1, 2, 0).numpy()
            if self.channels == 1:
                return Image.fromarray(array[:, :, 0], mode="L")
            return Image.fromarray(array, mode="RGB")
        return pixels

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        if index < 0:
            index += self.length
        if not 0 <= index < self.length:
            raise IndexError(index)
        sample = self._raw(index)
        if self.transform is not None:
            sample = self.transform(sample)
        label: Any = index % len(self.classes) if STATE.config.get("label_kind") != "zero" else 0
        if self.target_transform is not None:
            label = self.target_transform(label)
        return sample, label

    @property
    def targets(self) -> list[int]:
        return [i % len(self.classes) for i in range(self.length)]

    @property
    def data(self) -> torch.Tensor:
        n = self.length
        g = torch.Generator().manual_seed(0)
        if self.channels == 1:
            return torch.randint(0, 256, (n, self.height, self.width), dtype=torch.uint8, generator=g)
        return torch.randint(0, 256, (n, self.height, self.width, self.channels), dtype=torch.uint8, generator=g)


class SyntheticTensors(Dataset):
    """Stands in for a Dataset class of the user's that reads files: samples of the inferred shape."""

    def __init__(self, name: str, shape: Any = None) -> None:
        shape = shape or STATE.config.get("input_shape")
        if not shape:
            raise RuntimeError(f"cannot build synthetic data for {name}: its sample shape is unknown")
        self.shape = tuple(shape)
        self.length = 64
        _note(f"{name}: synthetic samples of shape {'×'.join(map(str, self.shape))} (the file's data is not read)")

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[torch.Tensor, Any]:
        if not 0 <= index < self.length:
            raise IndexError(index)
        g = torch.Generator().manual_seed(index)
        return torch.randn(self.shape, generator=g), _label(index)


def _label(index: int) -> Any:
    kind = STATE.config.get("label_kind", "index")
    if kind == "float":
        # One regression target per sample unless the model's output size is known.
        return torch.zeros(tuple(STATE.config.get("label_shape") or (1,)))
    return 0


def dataset(name: str, *args: Any, **kwargs: Any) -> Dataset:
    """``torchvision.datasets.X(...)`` or a file-reading Dataset of the user's, replaced."""
    short = name.rsplit(".", 1)[-1]
    if name.startswith("torchvision."):
        return SyntheticImages(short, args, kwargs)
    return SyntheticTensors(short)


def _note(text: str) -> None:
    if text not in STATE.notes:
        STATE.notes.append(text)


# --------------------------------------------------------------------------
# A small torchvision for sandboxes that lack it (datasets, transforms, utils)

_REAL_TORCHVISION = False


def _fake_torchvision() -> types.ModuleType:
    import torch.nn.functional as F

    tv = types.ModuleType("torchvision")
    tv.__path__ = []  # a package, so that submodule imports resolve through sys.modules
    tv.__version__ = "0.0+torchlint-stand-in"
    tv.__torchlint_fake__ = True
    transforms = types.ModuleType("torchvision.transforms")
    transforms.__path__ = []
    functional = types.ModuleType("torchvision.transforms.functional")
    datasets = types.ModuleType("torchvision.datasets")
    utils = types.ModuleType("torchvision.utils")

    class Transform:
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self.args, self.kwargs = args, kwargs

        def __call__(self, x: Any) -> Any:
            return x

        def __repr__(self) -> str:
            return f"{type(self).__name__}()"

    class Compose(Transform):
        def __init__(self, transforms_: list) -> None:
            self.transforms = list(transforms_)

        def __call__(self, x: Any) -> Any:
            for t in self.transforms:
                x = t(x)
            return x

    def _size(size: Any) -> tuple[int, int]:
        if isinstance(size, int):
            return size, size
        size = tuple(size)
        return (size[0], size[0]) if len(size) == 1 else (size[0], size[1])

    class Resize(Transform):
        def __init__(self, size: Any, *args: Any, **kwargs: Any) -> None:
            self.size = size

        def __call__(self, x: Any) -> Any:
            if not isinstance(x, torch.Tensor):
                return x
            if isinstance(self.size, int):  # shorter side to size
                h, w = x.shape[-2:]
                s = self.size
                out = (s, max(1, round(w * s / h))) if h <= w else (max(1, round(h * s / w)), s)
            else:
                out = _size(self.size)
            return F.interpolate(x.unsqueeze(0), size=out, mode="bilinear", align_corners=False).squeeze(0)

    class _Crop(Transform):
        def __init__(self, size: Any, *args: Any, **kwargs: Any) -> None:
            self.size = _size(size)
            self.padding = kwargs.get("padding", args[0] if args else None)

        def __call__(self, x: Any) -> Any:
            if not isinstance(x, torch.Tensor):
                return x
            h, w = self.size
            if x.shape[-2] < h or x.shape[-1] < w:
                x = F.interpolate(x.unsqueeze(0), size=(max(h, x.shape[-2]), max(w, x.shape[-1]))).squeeze(0)
            top = (x.shape[-2] - h) // 2
            left = (x.shape[-1] - w) // 2
            return x[..., top : top + h, left : left + w]

    class RandomResizedCrop(Transform):
        def __init__(self, size: Any, *args: Any, **kwargs: Any) -> None:
            self.size = _size(size)

        def __call__(self, x: Any) -> Any:
            if not isinstance(x, torch.Tensor):
                return x
            return F.interpolate(x.unsqueeze(0), size=self.size, mode="bilinear", align_corners=False).squeeze(0)

    class Grayscale(Transform):
        def __init__(self, num_output_channels: int = 1) -> None:
            self.num_output_channels = num_output_channels

        def __call__(self, x: Any) -> Any:
            if not isinstance(x, torch.Tensor):
                return x
            gray = x.mean(dim=-3, keepdim=True)
            return gray.expand(self.num_output_channels, *gray.shape[-2:]).clone()

    class Normalize(Transform):
        def __init__(self, mean: Any, std: Any, inplace: bool = False) -> None:
            self.mean, self.std = mean, std

        def __call__(self, x: Any) -> Any:
            if not isinstance(x, torch.Tensor):
                return x
            mean = torch.as_tensor(self.mean, dtype=x.dtype).reshape(-1, 1, 1)
            std = torch.as_tensor(self.std, dtype=x.dtype).reshape(-1, 1, 1)
            return (x - mean) / std

    class Lambda(Transform):
        def __init__(self, lambd: Callable) -> None:
            self.lambd = lambd

        def __call__(self, x: Any) -> Any:
            return self.lambd(x)

    class ToTensor(Transform):
        def __call__(self, x: Any) -> Any:
            return x if isinstance(x, torch.Tensor) else torch.as_tensor(x)

    specific = {
        "Compose": Compose,
        "Resize": Resize,
        "CenterCrop": _Crop,
        "RandomCrop": _Crop,
        "RandomResizedCrop": RandomResizedCrop,
        "Grayscale": Grayscale,
        "Normalize": Normalize,
        "Lambda": Lambda,
        "ToTensor": ToTensor,
    }
    for name, cls in specific.items():
        setattr(transforms, name, type(name, (cls,), {}))

    def _any_transform(name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        cls = type(name, (Transform,), {})
        setattr(transforms, name, cls)
        return cls

    transforms.__getattr__ = _any_transform  # RandomHorizontalFlip, ColorJitter, ...: identity
    transforms.functional = functional
    functional.__getattr__ = lambda name: (lambda x, *a, **k: x)

    def _dataset_class(name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return lambda *args, **kwargs: SyntheticImages(name, args, kwargs)

    datasets.__getattr__ = _dataset_class

    def make_grid(tensor: Any, nrow: int = 8, padding: int = 2, **kwargs: Any) -> torch.Tensor:
        if isinstance(tensor, (list, tuple)):
            tensor = torch.stack(list(tensor))
        return torch.cat(list(tensor), dim=-1)

    utils.make_grid = make_grid
    utils.save_image = lambda *args, **kwargs: None

    reason = (
        "torchvision is not installed in the sandbox's Python "
        "(torchlint's stand-in covers torchvision.datasets, transforms and utils only)"
    )

    def _unavailable(name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        raise ModuleNotFoundError(reason)

    tv.__getattr__ = _unavailable
    tv.transforms, tv.datasets, tv.utils = transforms, datasets, utils

    import importlib.abc

    class _Uncovered(importlib.abc.MetaPathFinder):
        """``import torchvision.models``: the stand-in has no such part; the error says why."""

        def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
            if fullname.startswith("torchvision.") and fullname not in sys.modules:
                raise ModuleNotFoundError(f"No module named '{fullname}': {reason}", name=fullname)
            return None

    sys.meta_path.insert(0, _Uncovered())
    sys.modules.update(
        {
            "torchvision": tv,
            "torchvision.transforms": transforms,
            "torchvision.transforms.functional": functional,
            "torchvision.datasets": datasets,
            "torchvision.utils": utils,
        }
    )
    return tv


def _fake_tqdm() -> None:
    def tqdm(iterable: Any = None, *args: Any, **kwargs: Any) -> Any:
        if iterable is None:
            return _Bar()
        return _Bar(iterable)

    class _Bar:
        def __init__(self, iterable: Any = ()) -> None:
            self.iterable = iterable

        def __iter__(self) -> Any:
            return iter(self.iterable)

        def __len__(self) -> int:
            return len(self.iterable)

        def __enter__(self) -> "_Bar":
            return self

        def __exit__(self, *exc: Any) -> None:
            return None

        def __getattr__(self, name: str) -> Any:
            return lambda *args, **kwargs: None

    module = types.ModuleType("tqdm")
    module.__path__ = []
    module.tqdm = module.trange = tqdm
    for sub in ("auto", "notebook", "std"):
        child = types.ModuleType(f"tqdm.{sub}")
        child.tqdm = child.trange = tqdm
        setattr(module, sub, child)
        sys.modules[f"tqdm.{sub}"] = child
    sys.modules["tqdm"] = module


def _fake_accelerate() -> None:
    class Accelerator:
        """Hugging Face Accelerate on one CPU process: prepare() hands back what it gets."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self.device = torch.device("cpu")
            self.is_main_process = self.is_local_main_process = True
            self.num_processes = 1
            self.process_index = 0
            _note("accelerate: torchlint's single-process stand-in (accelerate is not installed)")

        def prepare(self, *objects: Any) -> Any:
            return objects[0] if len(objects) == 1 else objects

        def backward(self, loss: torch.Tensor, **kwargs: Any) -> None:
            loss.backward(**kwargs)

        def unwrap_model(self, model: Any, *args: Any, **kwargs: Any) -> Any:
            return model

        def gather(self, value: Any) -> Any:
            return value

        gather_for_metrics = reduce = pad_across_processes = gather

        def autocast(self, *args: Any, **kwargs: Any) -> Any:
            return contextlib.nullcontext()

        def accumulate(self, *models: Any) -> Any:
            return contextlib.nullcontext()

        def clip_grad_norm_(self, parameters: Any, max_norm: float, norm_type: float = 2.0) -> Any:
            return torch.nn.utils.clip_grad_norm_(parameters, max_norm, norm_type)

        def print(self, *args: Any, **kwargs: Any) -> None:
            print(*args, **kwargs)

        def wait_for_everyone(self) -> None:
            return None

        def save(self, *args: Any, **kwargs: Any) -> None:
            return None

        def log(self, *args: Any, **kwargs: Any) -> None:
            return None

    module = types.ModuleType("accelerate")
    module.Accelerator = Accelerator
    module.__torchlint_fake__ = True
    sys.modules["accelerate"] = module


# --------------------------------------------------------------------------
# Patches


def _install(config: dict[str, Any]) -> None:
    global _REAL_TORCHVISION
    import importlib.util

    torch.manual_seed(0)
    with contextlib.suppress(RuntimeError):
        torch.set_num_threads(1)  # tiny batches: threads only cost start-up
    _REAL_TORCHVISION = importlib.util.find_spec("torchvision") is not None
    if not _REAL_TORCHVISION:
        _fake_torchvision()
    if importlib.util.find_spec("tqdm") is None:
        _fake_tqdm()
    if importlib.util.find_spec("accelerate") is None:
        _fake_accelerate()

    builtins.input = lambda prompt="": ""
    import time

    time.sleep = lambda seconds: None
    torch.save = lambda *args, **kwargs: None
    import argparse

    real_parse_args = argparse.ArgumentParser.parse_args

    def parse_args(self: argparse.ArgumentParser, args: Any = None, namespace: Any = None) -> Any:
        # The sandbox's command line is not the user's: use the defaults.
        return real_parse_args(self, [] if args is None else args, namespace)

    argparse.ArgumentParser.parse_args = parse_args  # type: ignore[method-assign]
    _patch_dataloader(config)
    _block_weights(random_weights=config.get("mode") != "tl202")
    _serve_vision_hub()
    if config.get("mode") == "tl101":
        _install_gradient_probe()
    if config.get("simulate_cuda"):
        _simulated_data_parallel()
    warnings.simplefilter("always")
    warnings.showwarning = _record_warning


def _patch_dataloader(config: dict[str, Any]) -> None:
    real_init = DataLoader.__init__
    batch_size = int(config.get("batch_size", 2))

    def __init__(self: DataLoader, *args: Any, **kwargs: Any) -> None:
        # The dataset comes positionally or as dataset= (half the tutorials write that).
        if "dataset" not in kwargs:
            if not args:
                real_init(self, **kwargs)  # the user's own TypeError, as unpatched
                return
            kwargs["dataset"], args = args[0], args[1:]
        # Positional: batch_size, shuffle, sampler, batch_sampler, num_workers, ...
        names = ("batch_size", "shuffle", "sampler", "batch_sampler", "num_workers", "collate_fn", "pin_memory", "drop_last")
        for name, value in zip(names, args):
            kwargs.setdefault(name, value)
        if kwargs.get("batch_sampler") is None and kwargs.get("batch_size", 1) is not None:
            kwargs["batch_size"] = batch_size
        kwargs["num_workers"] = 0
        for name in ("persistent_workers", "prefetch_factor", "pin_memory_device", "multiprocessing_context", "worker_init_fn"):
            kwargs.pop(name, None)
        kwargs["pin_memory"] = False
        real_init(self, **kwargs)

    DataLoader.__init__ = __init__  # type: ignore[method-assign]
    if config.get("mode") == "tl101":
        real_iter = DataLoader.__iter__

        def __iter__(self: DataLoader) -> Any:
            # The same batch every time: step 2 then repeats step 1's math exactly.
            first = next(iter(real_iter(self)))
            limit = 64
            return iter([first] * limit)

        DataLoader.__iter__ = __iter__  # type: ignore[method-assign]


def _simulated_data_parallel() -> None:
    """DataParallel on one simulated GPU: scatter (move the inputs to cuda:0), then call the module.

    That is what DataParallel does with a single device; its own constructor
    queries GPU properties that a simulated device does not have.
    """
    import torch.nn.parallel

    class DataParallel(torch.nn.Module):
        def __init__(self, module: torch.nn.Module, device_ids: Any = None, output_device: Any = None, dim: int = 0) -> None:
            super().__init__()
            self.module = module
            self.dim = dim

        def forward(self, *inputs: Any, **kwargs: Any) -> Any:
            return self.module(*moved(inputs), **moved(kwargs))

    torch.nn.DataParallel = DataParallel  # type: ignore[misc]
    torch.nn.parallel.DataParallel = DataParallel  # type: ignore[misc]
    _note("DataParallel: one simulated GPU (inputs moved to cuda:0, as DataParallel scatters them)")


class _RandomWeights(dict):
    """What a pretrained-weights download gives in the sandbox: nothing to load (the model keeps its
    random initialisation), so ``models.resnet18(weights=...)`` builds and the program goes on."""


def _block_weights(random_weights: bool = True) -> None:
    """No download ever: a file download fails (WeightsBlocked); a state dict from a URL (torchvision's
    ``weights=``, ``torch.hub.load_state_dict_from_url``) is random weights, or for TL202, which asks
    whether the call would download, WeightsBlocked too."""
    import torch.hub

    def blocked(url: Any = None, *args: Any, **kwargs: Any) -> Any:
        raise WeightsBlocked(f"torchlint blocked the download of {url} (no network in the sandbox)")

    def random_state(url: Any = None, *args: Any, **kwargs: Any) -> Any:
        _note(f"pretrained weights: random instead of {url} (no network in the sandbox)")
        return _RandomWeights()

    from_url = random_state if random_weights else blocked
    torch.hub.download_url_to_file = blocked
    torch.hub.load_state_dict_from_url = from_url
    # A torchvision imported before this (preloaded by the worker) holds its own reference.
    api = sys.modules.get("torchvision.models._api")
    if api is not None and hasattr(api, "load_state_dict_from_url"):
        api.load_state_dict_from_url = from_url
    if random_weights:
        real_load = torch.nn.Module.load_state_dict

        def load_state_dict(self: torch.nn.Module, state_dict: Any, *args: Any, **kwargs: Any) -> Any:
            if isinstance(state_dict, _RandomWeights):
                from torch.nn.modules.module import _IncompatibleKeys

                return _IncompatibleKeys([], [])
            return real_load(self, state_dict, *args, **kwargs)

        torch.nn.Module.load_state_dict = load_state_dict  # type: ignore[method-assign]


def _serve_vision_hub() -> None:
    """torch.hub.load("pytorch/vision", name, ...) from the installed torchvision.

    The hub would clone the repository (no network in the sandbox); its hubconf
    re-exports torchvision's builders, so the installed package runs the same code.
    """
    import torch.hub

    real_load = torch.hub.load

    def load(repo_or_dir: Any, model: Any, *args: Any, source: str = "github", trust_repo: Any = None,
             force_reload: bool = False, verbose: bool = True, skip_validation: bool = False, **kwargs: Any) -> Any:  # fmt: skip
        repo, _, tag = str(repo_or_dir).partition(":")
        if _REAL_TORCHVISION and source == "github" and repo == "pytorch/vision" and tag in ("", "main"):
            import torchvision.models

            if hasattr(torchvision.models, "get_model_builder"):
                _note(f"torch.hub.load('{repo_or_dir}', '{model}') served by the installed torchvision "
                      f"{torchvision.__version__} (no network in the sandbox)")  # fmt: skip
                return torchvision.models.get_model_builder(str(model))(*args, **kwargs)
        return real_load(repo_or_dir, model, *args, source=source, trust_repo=trust_repo, force_reload=force_reload,
                         verbose=verbose, skip_validation=skip_validation, **kwargs)  # fmt: skip

    torch.hub.load = load


def _record_warning(message: Any, category: type, filename: str, lineno: int, file: Any = None, line: Any = None) -> None:
    if len(STATE.warnings) >= 50:
        return
    STATE.warnings.append(
        {
            "category": category.__name__,
            "message": str(message),
            "in_target": STATE.depth > 0,
            "filename": os.path.basename(filename),
            "line": lineno,
        }
    )


# --------------------------------------------------------------------------
# TL101: do gradients accumulate across optimizer steps?


def _grad_vector(optimizer: torch.optim.Optimizer) -> torch.Tensor:
    parts = []
    for group in optimizer.param_groups:
        for p in group["params"]:
            if p.grad is not None:
                parts.append(p.grad.detach().reshape(-1).to("cpu", torch.float64))
            else:
                parts.append(torch.zeros(p.numel(), dtype=torch.float64))
    return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.float64)


def _install_gradient_probe() -> None:
    from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook
    from torch.nn.modules.module import register_module_forward_pre_hook

    snapshots: dict[int, list[torch.Tensor]] = {}
    measure = STATE.measure
    measure["steps"] = []
    vectors: list[torch.Tensor] = []

    observed: list[torch.optim.Optimizer] = []
    # For each observed step, what fraction of its gradient was still in .grad
    # at each backward() that started before the next step.
    leftovers: list[list[float]] = []

    def pre(optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        params = [p for g in optimizer.param_groups for p in g["params"]]
        snapshots[id(optimizer)] = [p.detach().clone() for p in params]

    def record(optimizer: torch.optim.Optimizer) -> None:
        # After the step: a closure (LBFGS) has computed its gradients by now,
        # and a GradScaler has unscaled them; the step itself leaves them be.
        if STATE.depth <= 0 or (observed and observed[0] is not optimizer):
            return
        if not observed:
            observed.append(optimizer)
            measure["optimizer_class"] = type(optimizer).__name__
        vec = _grad_vector(optimizer)
        vectors.append(vec)
        leftovers.append([])
        measure["steps"].append(float(vec.norm()))

    def before_backward() -> None:
        if not observed or not vectors:
            return
        last = vectors[-1]
        norm2 = float(torch.dot(last, last))
        if norm2 > 0:
            now = _grad_vector(observed[0])
            leftovers[-1].append(float(torch.dot(now, last)) / norm2)

    real_tensor_backward = torch.Tensor.backward
    real_autograd_backward = torch.autograd.backward

    def tensor_backward(self: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        before_backward()
        return real_tensor_backward(self, *args, **kwargs)

    def autograd_backward(*args: Any, **kwargs: Any) -> Any:
        before_backward()
        return real_autograd_backward(*args, **kwargs)

    torch.Tensor.backward = tensor_backward  # type: ignore[method-assign]
    torch.autograd.backward = autograd_backward

    def post(optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        # Every optimizer's update is undone: the parameters stay where they
        # were, so the second step computes the first step's gradient again.
        saved = snapshots.pop(id(optimizer), None)
        if saved is None:
            return
        with torch.no_grad():
            params = [p for g in optimizer.param_groups for p in g["params"]]
            for p, s in zip(params, saved):
                p.copy_(s)
        record(optimizer)

    def reseed(module: torch.nn.Module, inputs: Any) -> None:
        # Dropout masks repeat exactly from one step to the next.
        torch.manual_seed(0)

    register_optimizer_step_pre_hook(pre)
    register_optimizer_step_post_hook(post)
    register_module_forward_pre_hook(reseed)
    measure["_vectors"] = vectors
    measure["_leftovers"] = leftovers


def _tl101_summary() -> dict[str, Any]:
    measure = STATE.measure
    vectors = measure.pop("_vectors", [])
    leftovers = measure.pop("_leftovers", [])
    out = dict(measure)
    # The least of step 1's gradient seen at any backward() before step 2:
    # 0 when something cleared .grad in between, 1 when nothing did.
    out["leftover"] = min(leftovers[0]) if leftovers and leftovers[0] else None
    if len(vectors) >= 2 and vectors[0].numel() == vectors[1].numel():
        g1, g2 = vectors[0], vectors[1]
        n1, n2 = float(g1.norm()), float(g2.norm())
        out["ratio"] = n2 / n1 if n1 > 0 else None
        # How much of step 1's gradient is still in step 2's: 1 when it was never cleared.
        carried = float(torch.dot(g2 - g1, g1) / (n1 * n1)) if n1 > 0 else None
        out["carried_over"] = carried
    return out


# --------------------------------------------------------------------------
# TL301: run the model on an input of the inferred shape


def forward(model: Any, shape: list[int] | tuple[int, ...], dtype: str | None = None, high: int | None = None) -> Any:
    """Call ``model`` on random input of ``shape`` (batch first); records the output's shape."""
    if dtype == "int64":
        x = torch.randint(0, int(high or 2), tuple(shape))
    else:
        x = torch.randn(*shape)
    STATE.measure["input_shape"] = list(shape)
    if isinstance(model, torch.nn.Module):
        model.eval()  # deterministic, and no batch-statistics limits on tiny batches
        first = next(iter(model.parameters()), None)
        if first is not None and first.device != x.device:
            x = x.to(first.device)
    with torch.no_grad():
        out = model(x)
    first = out
    while isinstance(first, (tuple, list)) and first:
        first = first[0]
    if isinstance(first, dict) and first:
        first = next(iter(first.values()))
    if isinstance(first, torch.Tensor):
        STATE.measure["output_shape"] = list(first.shape)
    return out


# --------------------------------------------------------------------------
# Stand-ins for the arguments of a function the file never calls


def loader(shuffle: bool = False) -> DataLoader:
    """A ``loader`` argument: synthetic samples of the inferred shape (3×32×32 when nothing is known)."""
    data = SyntheticTensors("the loader argument", STATE.config.get("input_shape") or [3, 32, 32])
    return DataLoader(data, batch_size=int(STATE.config.get("batch_size", 2)), shuffle=shuffle)


def model() -> torch.nn.Module:
    """A model for a ``model`` argument when the file defines none: flatten, then one linear layer."""
    shape = STATE.config.get("input_shape") or [3, 32, 32]
    features = math.prod(shape)
    classes = 10
    if STATE.config.get("label_kind") == "float":
        classes = int((STATE.config.get("label_shape") or [1])[-1])
    _note(f"model argument: a stand-in Flatten + Linear({features}, {classes})")
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(features, classes))


def sgd(module: torch.nn.Module) -> torch.optim.Optimizer:
    return torch.optim.SGD(module.parameters(), lr=0.01)


def criterion() -> torch.nn.Module:
    return torch.nn.MSELoss() if STATE.config.get("label_kind") == "float" else torch.nn.CrossEntropyLoss()


def device() -> torch.device:
    if STATE.config.get("device") == "cuda" or STATE.config.get("simulate_cuda"):
        return torch.device("cuda")
    return torch.device("cpu")


# --------------------------------------------------------------------------
# Running


def _describe(exc: BaseException) -> dict[str, Any]:
    line = None
    user_lines = []
    for frame, lineno in traceback.walk_tb(exc.__traceback__):
        if frame.f_code.co_filename == STATE.filename:
            user_lines.append(lineno)
    if user_lines:
        line = user_lines[-1]
    message = str(exc)
    if isinstance(exc, KeyError) and exc.args:
        message = repr(exc.args[0])
    return {
        "type": type(exc).__name__,
        "module": type(exc).__module__,
        "message": message[:2000],
        "line": line,
        "user_lines": user_lines[-10:],
        "in_target": STATE.depth > 0,
    }


def main(config: dict[str, Any], source: str, plan: dict[str, Any], report: Callable[..., None] | None = None) -> None:
    global STATE
    STATE = _State(config)
    if report is None:  # run by hand, outside the sandbox
        import json

        def report(data: dict[str, Any]) -> None:
            print("TORCHLINT-PAYLOAD " + json.dumps(data, default=str))

    payload: dict[str, Any] = {}
    if config.get("device") == "cuda" and not torch.cuda.is_available():
        report({"outcome": "no-device", "error": "--device cuda was asked for, but PyTorch in the sandbox sees no CUDA device"})
        return
    try:
        _install(config)
        tree = extract.apply_plan(source, plan)
        code = compile(tree, STATE.filename, "exec", dont_inherit=True)
        tail = compile(plan["tail"], "<torchlint entry>", "exec", dont_inherit=True) if plan.get("tail") else None
    except Exception as exc:  # noqa: BLE001 - a harness bug is reported, not raised
        payload = {"outcome": "harness-error", "error": f"{type(exc).__name__}: {exc}"}
        report(payload)
        return
    import linecache

    linecache.cache[STATE.filename] = (len(source), None, source.splitlines(True), STATE.filename)
    namespace: dict[str, Any] = {
        "__name__": "__main__",
        "__file__": os.path.join(os.getcwd(), os.path.basename(STATE.filename)),
        "__builtins__": builtins,
        "_torchlint": sys.modules[__name__],
    }
    outcome = "finished"
    error = None
    try:
        exec(code, namespace)
        if tail is not None:
            exec(tail, namespace)
    except Stop:
        outcome = "stopped"
    except SystemExit as exc:
        outcome = "exception"
        error = {"type": "SystemExit", "message": f"the program exited (status {exc.code})", "line": None}
    except BaseException as exc:  # noqa: BLE001 - the user's exception is the evidence
        outcome = "exception"
        error = _describe(exc)
    _after_target()
    payload = {
        "outcome": outcome,
        "reached": STATE.reached,
        "passed": STATE.passed,
        "target_exception": STATE.target_exception,
        "exception": error,
        "warnings": STATE.warnings,
        "notes": STATE.notes,
        "loops": STATE.loops,
        "torch": torch.__version__,
        "torchvision": _torchvision_version(),
    }
    if config.get("mode") == "tl101":
        payload["measure"] = _tl101_summary()
    else:
        payload["measure"] = {k: v for k, v in STATE.measure.items() if not k.startswith("_")}
    report(_jsonable(payload))


def _torchvision_version() -> str | None:
    module = sys.modules.get("torchvision")
    if module is None or getattr(module, "__torchlint_fake__", False):
        return None
    return getattr(module, "__version__", None)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)

