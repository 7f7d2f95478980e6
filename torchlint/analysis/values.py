"""The abstract values of the program model: what the code says a name holds.

Every value is immutable and comparable; :func:`join` merges the values two
paths give a name (an ``if``/``else``, a loop's back edge, the call sites of a
function) and keeps only what both agree on. ``UNKNOWN`` is the answer
wherever the code does not say: rules stay silent on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Union

import libcst as cst


class _Unknown:
    __slots__ = ()

    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN = _Unknown()


@dataclass(frozen=True)
class Placement:
    """Where a module or tensor was put: ``kind`` is "cpu" or "accel" (any non-CPU device).

    ``text`` is the device expression's source (None for ``.cuda()``), ``node``
    the call that moved it, ``cuda_args`` the arguments of ``.cuda(...)``.
    Two moves are the same placement only if they are the same call (libcst
    nodes compare by identity).
    """

    kind: str
    text: str | None = None
    node: cst.CSTNode | None = field(default=None, repr=False)
    cuda_args: str = ""

    @property
    def call_text(self) -> str:
        return f".to({self.text})" if self.text is not None else f".cuda({self.cuda_args})"

    @property
    def label(self) -> str:
        return self.text if self.text is not None else "cuda"


CPU = Placement("cpu")


@dataclass(frozen=True)
class ModuleV:
    """An ``nn.Module``. ``cls``: its class (a class of this file, or a qualified
    ``torch.nn.X``); ``placement``: None when not known to be on a device;
    ``moves_inputs``: DataParallel/DDP, or a ``forward`` that moves its inputs;
    ``training``: True after ``.train()`` (or when just built), False after ``.eval()``,
    None unknown; ``back``: at the top of a loop whose iterations disagree (``training`` None),
    the mode the loop's back edge brings (an ``eval()`` late in the body of an epoch loop: False);
    ``output``: the activation its output ends with ("softmax", "log_softmax", "sigmoid"),
    for ``nn.Softmax`` and friends and an ``nn.Sequential`` ending in one;
    ``mode_dependent``: for torch classes, whether it behaves differently in train and eval
    mode (dropout, batch norm: True; Linear, ReLU: False; None unknown)."""

    cls: str | None = None
    placement: Placement | None = None
    moves_inputs: bool = False
    training: bool | None = None
    back: bool | None = None
    output: str | None = None
    mode_dependent: bool | None = None


@dataclass(frozen=True)
class Batch:
    """Where a tensor came from: a loader (its text), the name it was bound to and the binding site."""

    loader: str
    root: str | None = None
    site: cst.CSTNode | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Shape:
    """A tensor's shape as the shape analysis (:mod:`torchlint.shapes`) computes it.

    ``dims``: one size per dimension, None where the file does not fix it (the batch size of a
    loader built without ``batch_size``); ``batch``: the first dimension is the batch of a
    DataLoader's batches; ``dtype``: "float" or "long". ``source``: the shape analysis's own
    value (its steps and input evidence, for messages); not part of the comparison."""

    dims: tuple[int | None, ...]
    batch: bool = False
    dtype: str = "float"
    source: object = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class TensorV:
    """A tensor (or a batch structure of tensors). ``placement`` None: device unknown;
    ``origin``: from which loader (kept through moves); ``grad``: carries a graph;
    ``shape`` (:class:`Shape` or None): asked of the shape analysis on first use, for the
    tensors of the model's recorded facts (``CallFact.args``/``receiver``, ``UpdateFact``);
    ``at`` is where that question goes (the expression and its function), not compared."""

    placement: Placement | None = None
    origin: Batch | None = None
    grad: bool | None = None
    # The activation applied last ("softmax", "log_softmax", "sigmoid") and where (for messages).
    act: str | None = None
    act_site: cst.CSTNode | None = field(default=None, repr=False, compare=False)
    # For a module's output: the callee's text (``model``), for messages only.
    via: str | None = field(default=None, compare=False)
    at: object = field(default=None, compare=False, repr=False)

    @property
    def shape(self) -> Shape | None:
        """The tensor's shape where the shape analysis knows it (computed on first request and
        remembered per expression); None when it does not, or for a value no fact recorded."""
        at = self.at
        return None if at is None else at.shape()  # type: ignore[attr-defined]

    @property
    def cpu_batch(self) -> bool:
        """Drawn from a loader and still on the CPU."""
        return self.origin is not None and self.placement == CPU


@dataclass(frozen=True)
class LoaderV:
    """A DataLoader (or a name that says it is one). ``yields_cpu``: its batches are CPU tensors."""

    text: str
    yields_cpu: bool = True
    declared: bool = False  # a torch DataLoader(...) construction, not a name


@dataclass(frozen=True)
class IteratorV:
    """``iter(x)``: ``over`` the iterable (a LoaderV gives batches); ``builtin``: map/zip/
    generator/itertools objects (never have a ``next`` method)."""

    over: object = UNKNOWN
    builtin: bool = False


@dataclass(frozen=True)
class OptimizerV:
    """An optimizer; ``params``: the dotted name of the module whose parameters it got, if plain."""

    params: str | None = None
    declared: bool = False  # a torch.optim construction, not a name
    # Built over a list of plain tensors (``Adam([image])``: style transfer, adversarial inputs), no module's parameters.
    over_tensors: bool = False


@dataclass(frozen=True)
class SchedulerV:
    """A learning-rate scheduler; ``qual``: its torch class, when the file built it."""

    qual: str | None = None


@dataclass(frozen=True)
class ScalerV:
    pass


@dataclass(frozen=True)
class LossFnV:
    qual: str | None = None


@dataclass(frozen=True)
class DatasetV:
    on_device: bool = False


@dataclass(frozen=True)
class DeviceV:
    placement: Placement


@dataclass(frozen=True)
class ParamsV:
    """``m.parameters()``: ``root`` is the module's dotted name."""

    root: str | None


@dataclass(frozen=True)
class FunctionV:
    """A function or method of this file; ``bound``: the receiver of a bound method;
    ``partial``: values already given by ``functools.partial``."""

    node: cst.FunctionDef = field(repr=False)
    bound: object = None
    partial: tuple = ()


@dataclass(frozen=True)
class ClassV:
    node: cst.ClassDef = field(repr=False)
    is_module: bool


@dataclass(frozen=True)
class InstanceV:
    """An object of a (non-module) class of this file."""

    cls: str


@dataclass(frozen=True)
class TupleV:
    items: tuple


@dataclass(frozen=True)
class Def:
    """Provenance: where a name got the value it holds at a read (the model's reaching
    definitions, which analyses with arithmetic of their own, such as the shape analysis,
    evaluate themselves). ``kind``: "assign" (``node`` the assigned expression, ``path`` where
    the name sits in a destructuring target: ``(0, 1)`` is ``a`` in ``(_, (_, a)) = ...``),
    "for" (``node`` the loop's iterable; the name is bound from its elements at ``path``),
    "param" (``node`` the def; ``index`` the position, None for keyword-only; ``name``),
    "def"/"class" (``node`` the statement), "other" (opaque: ``with ... as``, ``except ... as``,
    ``x += ...``, ``del``, starred targets, comprehension variables). ``scope``: the function whose
    code binds it (None: the module). Nodes compare by identity, so the same site is one Def."""

    kind: str
    node: cst.CSTNode | None = field(default=None, repr=False)
    path: tuple = ()
    scope: cst.FunctionDef | None = field(default=None, repr=False)
    index: int | None = None
    name: str | None = None


@dataclass(frozen=True)
class Defs:
    """The definitions that may reach a read (joined paths keep every one of them)."""

    items: frozenset


Value = Union[
    _Unknown, ModuleV, TensorV, LoaderV, IteratorV, OptimizerV, SchedulerV, ScalerV, LossFnV, DatasetV,
    DeviceV, ParamsV, FunctionV, ClassV, InstanceV, TupleV,
]


def join(a: object, b: object) -> object:
    """What is true on both paths. ``None`` (not bound on a path) joins to the other value."""
    if a is None:
        return b
    if b is None or a == b:
        return a
    if type(a) is not type(b):
        return UNKNOWN
    if isinstance(a, ModuleV):
        assert isinstance(b, ModuleV)
        return ModuleV(
            a.cls if a.cls == b.cls else None,
            a.placement if a.placement == b.placement else None,
            a.moves_inputs and b.moves_inputs,
            a.training if a.training == b.training else None,
            # None says nothing about later iterations: the other path's back edge is kept.
            a.back if b.back is None or a.back == b.back else (b.back if a.back is None else None),
            a.output if a.output == b.output else None,
            a.mode_dependent if a.mode_dependent == b.mode_dependent else None,
        )
    if isinstance(a, TensorV):
        assert isinstance(b, TensorV)
        origin = a.origin if a.origin == b.origin else None
        if origin is None and a.origin is not None and b.origin is not None and a.origin.loader == b.origin.loader:
            origin = Batch(a.origin.loader)
        return TensorV(
            a.placement if a.placement == b.placement else None,
            origin,
            a.grad if a.grad == b.grad else None,
            a.act if a.act == b.act else None,
            a.act_site if a.act == b.act else None,
        )
    if isinstance(a, TupleV):
        assert isinstance(b, TupleV)
        if len(a.items) == len(b.items):
            return TupleV(tuple(join(x, y) for x, y in zip(a.items, b.items)))
        return UNKNOWN
    if isinstance(a, SchedulerV):
        return SchedulerV(None)
    if isinstance(a, OptimizerV):
        return OptimizerV(None, a.declared and b.declared, a.over_tensors and b.over_tensors)  # type: ignore[union-attr]
    if isinstance(a, LoaderV):
        # Two loaders (``loader`` and ``self.loader``): still a loader; messages name the first.
        return LoaderV(a.text, a.yields_cpu and b.yields_cpu, a.declared and b.declared)  # type: ignore[union-attr]
    if isinstance(a, IteratorV):
        return IteratorV(join(a.over, b.over), a.builtin and b.builtin)  # type: ignore[union-attr]
    if isinstance(a, Defs):
        return Defs(a.items | b.items)  # type: ignore[union-attr]
    return UNKNOWN


def with_placement(value: object, placement: Placement) -> object:
    if isinstance(value, ModuleV):
        return replace(value, placement=None if placement is CPU else placement)
    if isinstance(value, TensorV):
        return replace(value, placement=placement)
    return value


__all__ = [
    "CPU", "UNKNOWN", "Batch", "ClassV", "DatasetV", "Def", "Defs", "DeviceV", "FunctionV", "InstanceV", "IteratorV", "LoaderV",
    "LossFnV", "ModuleV", "OptimizerV", "ParamsV", "Placement", "ScalerV", "SchedulerV", "Shape", "TensorV", "TupleV",
    "Value", "join", "with_placement",
]
