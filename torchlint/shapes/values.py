"""The values the shape interpreter computes with.

Python constants stay Python objects (int, float, str, bool, None, tuple).
Everything the interpreter cannot know is :data:`UNKNOWN`; every operation on
it gives :data:`UNKNOWN` again, so a rule that only acts on known values stays
silent by construction.

A tensor's shape is a tuple of dims: an ``int``, :data:`BATCH` (the batch size
of the model's input, whatever it is) or ``None`` (unknown). An *open* tensor
has an unknown number of leading dims before the ones listed, which is how a
layer's output looks when its input is unknown (``Linear(784, 128)`` gives
``(…, 128)``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Union

import libcst as cst

from torchlint.analysis.tables import ClassInfo, FuncInfo


class _Unknown:
    __slots__ = ()

    def __repr__(self) -> str:
        return "UNKNOWN"

    def __bool__(self) -> bool:  # pragma: no cover - guards against accidental truth tests
        raise TypeError("UNKNOWN has no truth value")


UNKNOWN: Any = _Unknown()


class _Batch:
    __slots__ = ()

    def __repr__(self) -> str:
        return "B"


BATCH: Any = _Batch()

Dim = Union[int, _Batch, None]


def is_int(v: object) -> bool:
    return type(v) is int


def is_known(v: object) -> bool:
    return v is not UNKNOWN


@dataclass(frozen=True, repr=False)
class Step:
    """One step of a shape chain: what ran (``label``) and the shapes around it."""

    node: cst.CSTNode
    label: str
    before: tuple[Dim, ...]
    after: tuple[Dim, ...]
    before_open: bool = False
    after_open: bool = False
    # "layer", "reshape" (view/flatten: left out of "produced by") or "elementwise".
    kind: str = "layer"
    # The layer's class for unnamed Sequential children ("MaxPool2d").
    desc: str = ""

    @property
    def changes_shape(self) -> bool:
        return self.kind != "elementwise" and (self.before != self.after or self.before_open != self.after_open)

    @property
    def name(self) -> str:
        return f"{self.label} ({self.desc})" if self.desc and self.label.endswith("]") else self.label

    @property
    def text(self) -> str:
        batched = bool(self.before) and self.before[0] is BATCH or bool(self.after) and self.after[0] is BATCH
        return f"{self.name}: {step_shape(self.before, self.before_open, batched)} → {step_shape(self.after, self.after_open, batched)}"

    def __repr__(self) -> str:
        return f"Step({self.text})"


def step_shape(dims: tuple, open_: bool, batched: bool) -> str:
    if open_:
        return shape_text(dims, True)
    return sample_text(dims, batched)


@dataclass(frozen=True)
class ViewLink:
    """A `view(-1, N)` whose N was wrong: the Linear that consumes it joins the same fix."""

    problem: Any  # analysis.Problem (mutable: fix ops are appended)
    size: int


@dataclass(eq=False)
class TensorV:
    dims: tuple[Dim, ...]
    open: bool = False
    steps: tuple[Step, ...] = ()
    # The per-sample dims that a flatten/view merged into the last dim (for "16×5×5 = 400").
    flat_from: tuple[Dim, ...] | None = None
    view_link: ViewLink | None = None
    dtype: str = "float"
    # Where an input tensor came from (set on tensors built at the top level of the file).
    origin: InputEvidence | None = None

    def same_shape(self, other: TensorV) -> bool:
        return self.open == other.open and self.dims == other.dims

    def with_dims(self, dims: tuple[Dim, ...], *, step: Step | None = None, open: bool = False,
                  flat_from: tuple[Dim, ...] | None = None, keep_link: bool = False) -> TensorV:
        steps = self.steps + ((step,) if step is not None else ())
        return TensorV(dims, open, steps, flat_from, self.view_link if keep_link else None, self.dtype, self.origin)

    @property
    def batched(self) -> bool:
        return bool(self.dims) and self.dims[0] is BATCH and not self.open


def open_tensor(steps: tuple[Step, ...] = ()) -> TensorV:
    return TensorV((), True, steps)


def dim_text(d: Dim) -> str:
    if d is BATCH:
        return "B"
    return "?" if d is None else str(d)


def shape_text(dims: tuple[Dim, ...] | None, open: bool = False) -> str:
    if dims is None:
        return "?"
    body = "×".join(dim_text(d) for d in dims)
    if open:
        return "…×" + body if body else "?"
    return body or "scalar"


def sample_text(dims: tuple[Dim, ...] | None, batched: bool = True) -> str:
    """Per-sample text: the batch dim is left out (``3×32×32``)."""
    if dims is None:
        return "?"
    if batched and dims and dims[0] is BATCH:
        dims = dims[1:]
    return shape_text(dims)


# --- Python-level objects the interpreter models ---


@dataclass(eq=False)
class ListV:
    items: list[Any]


@dataclass(eq=False)
class DictV:
    items: dict[Any, Any]


@dataclass(eq=False)
class QualV:
    """Something known only by its import name: ``torch.nn.Conv2d``, ``torch.randn``."""

    qualname: str


@dataclass(eq=False)
class BuiltinV:
    name: str


@dataclass(eq=False, repr=False)
class LayerV:
    """A torch.nn layer built in the file, with its folded arguments."""

    kind: str
    qualname: str
    node: cst.Call | None
    params: dict[str, Any] = field(default_factory=dict)
    # Source expressions of the arguments the call spelled out (for fixes).
    arg_nodes: dict[str, cst.BaseExpression] = field(default_factory=dict)
    children: list[Any] | None = None
    child_names: list[str] | None = None
    calls: int = 0


@dataclass(eq=False, repr=False)
class ModuleV:
    """An instance of a module class of the file, after its ``__init__`` ran."""

    cls: ClassInfo
    attrs: dict[str, Any]
    node: cst.Call | None  # the instantiation, when there is one
    complete: bool = True  # False when __init__ could not be followed to the end


@dataclass(eq=False)
class BoundMethodV:
    func: FuncInfo
    self_value: Any


@dataclass(eq=False)
class MethodV:
    """A method of a modelled object (``x.view``, ``layers.append``)."""

    receiver: Any
    name: str
    node: cst.CSTNode | None = None


@dataclass(eq=False)
class SuperV:
    self_value: Any


@dataclass(eq=False)
class IterV:
    element: Any


@dataclass(eq=False, repr=False)
class TransformV:
    """A torchvision transform: ``op`` names it, ``params`` are its folded arguments."""

    op: str
    params: dict[str, Any]
    items: list[Any] | None = None  # Compose / RandomApply


@dataclass(eq=False, repr=False)
class DatasetV:
    name: str  # what the user knows it as: "CIFAR-10"
    qualname: str
    sample: tuple[int, int, int] | None  # C×H×W after the transforms, None when unknown
    node: cst.CSTNode
    has_labels: bool = True


@dataclass(eq=False, repr=False)
class LoaderV:
    dataset: DatasetV
    batch_size: Any
    node: cst.CSTNode


@dataclass(frozen=True, repr=False)
class InputEvidence:
    """Where a model's input shape comes from."""

    dims: tuple[Dim, ...]  # with BATCH as dim 0 when batched
    kind: str  # "tensor" | "summary" | "dataset" | "synthesized"
    description: str  # "CIFAR-10", "torch.randn(1, 3, 28, 28)"
    node: cst.CSTNode | None
    batch: int | None  # the literal batch size when the file states one
    dtype: str = "float"  # "float" or "long" (token ids)
    high: int | None = None  # exclusive upper bound for integer inputs

    def __repr__(self) -> str:
        return f"InputEvidence({shape_text(self.dims)}, {self.kind}, {self.description!r}, batch={self.batch})"

    def concrete_batch(self) -> int:
        """The batch the input is checked with: the literal one (tensor, torchinfo); 2 otherwise
        (a DataLoader's batch size is only used in messages)."""
        return self.batch if self.kind in ("tensor", "summary") and self.batch is not None else 2

    def concrete(self) -> list[int]:
        b = self.concrete_batch()
        return [b if d is BATCH else int(d) for d in self.dims]  # type: ignore[arg-type]


__all__ = [
    "BATCH",
    "UNKNOWN",
    "BoundMethodV",
    "BuiltinV",
    "DatasetV",
    "DictV",
    "Dim",
    "InputEvidence",
    "IterV",
    "LayerV",
    "ListV",
    "LoaderV",
    "MethodV",
    "ModuleV",
    "QualV",
    "Step",
    "SuperV",
    "TensorV",
    "TransformV",
    "ViewLink",
    "dim_text",
    "is_int",
    "is_known",
    "open_tensor",
    "sample_text",
    "shape_text",
]


def _short_repr(self) -> str:
    name = type(self).__name__
    if isinstance(self, LayerV):
        return f"LayerV({self.kind}, {len(self.children) if self.children is not None else ''})"
    if isinstance(self, ModuleV):
        return f"ModuleV({self.cls.name}, attrs={sorted(self.attrs)})"
    if isinstance(self, DatasetV):
        return f"DatasetV({self.name}, {self.sample})"
    if isinstance(self, LoaderV):
        return f"LoaderV({self.dataset!r}, {self.batch_size})"
    if isinstance(self, TransformV):
        return f"TransformV({self.op})"
    return name


for _cls in (LayerV, ModuleV, DatasetV, LoaderV, TransformV):
    _cls.__repr__ = _short_repr  # type: ignore[method-assign]
