"""A small abstract interpreter for the Python that builds and runs models.

Two ways to evaluate names:

* *executing* frames run a function body statement by statement (a module's
  ``__init__`` and ``forward``, helpers they call), with a flow-sensitive env;
* *binding* frames read code the interpreter does not execute (a training
  script's module level and functions): what a name holds there is the program
  model's answer (:mod:`torchlint.analysis`). The model gives the definitions
  that reach the read (an assignment, a ``for`` target over an iterable, a
  parameter with its call sites, a def or a class); this interpreter evaluates
  them with its own arithmetic, and joins them (equal values or UNKNOWN). This
  is how ``model``, ``images`` or ``train_loader`` in a training script are known
  without running the script.

Control flow that depends on something unknown never gets guessed: in
``forward`` the run stops there (nothing after it is judged); elsewhere the
names it assigns become UNKNOWN.
"""

from __future__ import annotations

import builtins
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import libcst as cst

from torchlint.walk import children as _children

from torchlint.shapes import layers as L
from torchlint.shapes import ops
from torchlint.analysis.tables import ClassInfo, FileTables, FuncInfo, ScopeInfo
from torchlint.analysis.values import Def
from torchlint.shapes.values import (
    BATCH,
    UNKNOWN,
    BoundMethodV,
    BuiltinV,
    DatasetV,
    DictV,
    InputEvidence,
    IterV,
    LayerV,
    ListV,
    LoaderV,
    MethodV,
    ModuleV,
    QualV,
    Step,
    SuperV,
    TensorV,
    TransformV,
    ViewLink,
    is_int,
    open_tensor,
)

_BUILTIN_NAMES = frozenset(dir(builtins))
_NOTBOUND = object()
MAX_DEPTH = 24
MAX_ITER = 512


class BudgetExceeded(Exception):
    pass


class Stop(Exception):
    """forward reached something it cannot follow: judge nothing after it."""

    def __init__(self, node: cst.CSTNode | None, reason: str) -> None:
        super().__init__(reason)
        self.node = node
        self.reason = reason


class _Abort(Exception):
    """A function body raised or could not run: its result is UNKNOWN."""


class _Return(Exception):
    def __init__(self, value: Any) -> None:
        self.value = value


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


class _LoopUnknown(Exception):
    """break/continue under an unknown condition: the whole loop is unknown."""


@dataclass(eq=False)
class Problem:
    """A certain shape error found while running a model's forward."""

    kind: str
    info: dict[str, Any]
    node: cst.CSTNode  # where the finding goes
    call: cst.CSTNode | None  # the call in forward that fails
    layer: LayerV | None
    label: str
    x: TensorV  # what the failing step received
    op_text: str = ""
    model: str = ""
    evidence: InputEvidence | None = None
    # (node, new code) pairs the unsafe fix would make; filled in by the analysis.
    fix_ops: list[tuple[cst.CSTNode, str]] = field(default_factory=list)
    linked: list[tuple[LayerV, cst.BaseExpression]] = field(default_factory=list)


class Run:
    """One model, one input: where problems are recorded while forward runs."""

    def __init__(self, model: str, evidence: InputEvidence | None) -> None:
        self.model = model
        self.evidence = evidence
        self.problems: list[Problem] = []
        self.applier = L.Applier(None if evidence is None else evidence.concrete_batch())
        self.stopped: Stop | None = None
        self.calls: dict[int, int] = {}
        # The first layer the raw input meets (to synthesize an input when the file gives none).
        self.first_layer: LayerV | None = None
        self.input_origin: Any = None


class Frame:
    __slots__ = ("scope", "mode", "env", "bind", "self_value", "cls", "prefix", "overrides", "tainted")

    def __init__(self, scope: ScopeInfo, mode: str, *, env: dict | None = None, bind: bool = False,
                 self_value: Any = None, cls: ClassInfo | None = None, prefix: str = "",
                 overrides: dict | None = None) -> None:
        self.scope = scope
        self.mode = mode  # "init" | "forward" | "top"
        self.env = env if env is not None else {}
        self.bind = bind
        self.self_value = self_value
        self.cls = cls
        self.prefix = prefix
        self.overrides = overrides
        self.tainted = False

    def child(self, bindings: dict) -> Frame:
        f = Frame(self.scope, self.mode, env=self.env, bind=self.bind, self_value=self.self_value,
                  cls=self.cls, prefix=self.prefix, overrides={**(self.overrides or {}), **bindings})
        return f


def same(a: Any, b: Any) -> bool:
    if a is b:
        return True
    if type(a) is not type(b):
        return False
    if isinstance(a, (int, float, str, bool)):
        return a == b
    if isinstance(a, tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, TensorV):
        return a.same_shape(b) and a.dtype == b.dtype
    if isinstance(a, QualV):
        return a.qualname == b.qualname
    if isinstance(a, IterV):
        return same(a.element, b.element)
    return False


def join(values: list[Any]) -> Any:
    if not values:
        return UNKNOWN
    first = values[0]
    for v in values[1:]:
        if not same(first, v):
            return UNKNOWN
    return first


def truth(v: Any) -> bool | None:
    if v is UNKNOWN or isinstance(v, (TensorV, IterV)) or v is BATCH:
        return None
    if v is None or isinstance(v, (bool, int, float, str, tuple)):
        return bool(v)
    if isinstance(v, ListV):
        return None if getattr(v, "poisoned", False) else bool(v.items)
    if isinstance(v, DictV):
        return bool(v.items)
    if isinstance(v, (LayerV, ModuleV, FuncInfo, ClassInfo, BoundMethodV, DatasetV, LoaderV, TransformV)):
        return True
    return None


def concrete(v: Any) -> bool:
    """A plain Python value with nothing unknown inside."""
    if v is None or isinstance(v, (bool, int, float, str)):
        return True
    if isinstance(v, tuple):
        return all(concrete(x) for x in v)
    return False


def names_in(node: cst.CSTNode) -> set[str]:
    """Names an expression reads (not attribute names or keyword argument names)."""
    out: set[str] = set()
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, cst.Name):
            out.add(n.value)
        elif isinstance(n, cst.Attribute):
            stack.append(n.value)
        elif isinstance(n, cst.Arg):
            stack.append(n.value)
        else:
            stack.extend(_children(n))
    return out


def _strip_self(text: str) -> str:
    return text[5:] if text.startswith("self.") else text


_DATASETS = {
    "MNIST": ("MNIST", (1, 28, 28)),
    "FashionMNIST": ("FashionMNIST", (1, 28, 28)),
    "KMNIST": ("KMNIST", (1, 28, 28)),
    "EMNIST": ("EMNIST", (1, 28, 28)),
    "QMNIST": ("QMNIST", (1, 28, 28)),
    "CIFAR10": ("CIFAR-10", (3, 32, 32)),
    "CIFAR100": ("CIFAR-100", (3, 32, 32)),
    "SVHN": ("SVHN", (3, 32, 32)),
    "STL10": ("STL-10", (3, 96, 96)),
    "ImageFolder": ("ImageFolder", (3, None, None)),
    "ImageNet": ("ImageNet", (3, None, None)),
    "FakeData": ("FakeData", (3, 224, 224)),
}
# Where the transform goes when passed positionally (after root).
_TRANSFORM_POS = {"MNIST": 2, "FashionMNIST": 2, "KMNIST": 2, "QMNIST": 2, "CIFAR10": 2, "CIFAR100": 2, "ImageFolder": 1}
_SHAPE_KEEPING_TRANSFORMS = frozenset(
    """Normalize RandomHorizontalFlip RandomVerticalFlip ColorJitter RandomAffine GaussianBlur
    RandomErasing AutoAugment RandAugment TrivialAugmentWide AugMix RandomAutocontrast RandomEqualize
    RandomInvert RandomPosterize RandomSolarize RandomAdjustSharpness RandomPerspective ToPILImage
    ConvertImageDtype ToDtype RandomGrayscale ElasticTransform SanitizeBoundingBoxes Identity""".split()
)
_TO_TENSOR = frozenset({"ToTensor", "PILToTensor", "ToImage", "ToImageTensor"})

_ELEMENTWISE_FUNCS = frozenset(
    """relu relu_ relu6 elu selu celu gelu silu mish leaky_relu hardtanh hardswish hardsigmoid sigmoid
    tanh softmax log_softmax softmin softplus softsign logsigmoid tanhshrink dropout dropout1d dropout2d
    dropout3d alpha_dropout feature_alpha_dropout normalize local_response_norm threshold rrelu
    batch_norm layer_norm group_norm instance_norm exp log abs sqrt neg sin cos clamp square rsqrt
    sign floor ceil round""".split()
)
_TENSOR_SAME = frozenset(
    """contiguous float double half bfloat16 to cuda cpu detach clone requires_grad_ type type_as
    relu relu_ sigmoid tanh exp log abs neg sqrt softmax log_softmax clamp clamp_ pow mul add sub div
    mul_ add_ sub_ div_ masked_fill masked_fill_ fill_ zero_ square rsqrt sign floor ceil round sin cos
    pin_memory cumsum""".split()
)
_TENSOR_LONG = frozenset({"long", "int", "short", "byte", "bool"})
_FACTORIES = frozenset({"randn", "rand", "zeros", "ones", "empty", "randint", "full"})


MODULE_BASES = frozenset({"torch.nn.Module", "torch.nn.modules.module.Module"})


def plain_module_classes(tables: FileTables) -> set[int]:
    """The classes (ids of the tables' :class:`ClassInfo`) whose bases resolve to exactly
    ``torch.nn.Module`` (and ``object``): the ones whose layers and ``forward`` the analysis
    follows (other bases, mixins or classes of the file, could bring their own)."""
    out: set[int] = set()
    for cls in tables.classes:
        bases = [cls.scope.qualname(b.value) for b in cls.node.bases]
        if any(b in MODULE_BASES for b in bases) and all(b in MODULE_BASES or b == "builtins.object" for b in bases):
            out.add(id(cls))
    return out


class Interpreter:
    def __init__(self, tables: FileTables, code: Callable[[cst.CSTNode], str], model: Any, *,
                 budget: int = 400_000, outputs: bool = False) -> None:
        # The program model's tables (scopes, classes, functions, calls) and its answers
        # (what names hold where the interpreter does not execute).
        self.c = tables
        self.model = model  # the program model: what names hold where the interpreter does not execute
        self.code = code
        self.ticks = 0
        self.budget = budget
        self.depth = 0
        self._memo: dict[Def, Any] = {}
        self._inprog: set[Def] = set()
        self.instances: dict[int, Any] = {}
        self.instantiated: dict[int, int] = {}  # id(ClassInfo) -> instantiations seen
        self.constructed: dict[int, int] = {}  # id(constructor node) -> layers built from it
        self.run: Run | None = None
        self.modules = plain_module_classes(tables)
        # Outside a model's run, calling a model of the file gives its output when it fits the
        # known tensor it is given (the program model's shape questions; TL301's own runs keep
        # top-level calls of models unknown).
        self.outputs = outputs

    def is_module(self, cls: ClassInfo | None) -> bool:
        return cls is not None and id(cls) in self.modules

    # ------------------------------------------------------------------ utils
    def tick(self) -> None:
        self.ticks += 1
        if self.ticks > self.budget:
            raise BudgetExceeded()

    def scope_of(self, func: cst.CSTNode | None) -> ScopeInfo:
        return self.c.scope_of(func)

    # ------------------------------------------------------------------ names
    def lookup(self, name: str, frame: Frame, node: cst.Name | None = None) -> Any:
        if frame.overrides and name in frame.overrides:
            return frame.overrides[name]
        scope: ScopeInfo | None = frame.scope
        if not frame.bind:
            if name in frame.env:
                return frame.env[name]
            bound = frame.scope.names.bindings.get(name)
            if bound is not None:
                # Local to the body being executed, and not bound on this path: unknown
                # (an import is its qualified name).
                return QualV(bound) if isinstance(bound, str) else UNKNOWN
            scope = frame.scope.parent
        # An import, or a builtin no scope rebinds, is what it is wherever it is read; anything
        # else is what the program model says reaches this read (the model is built only then).
        found = None if scope is None else scope.binding(name)
        if found is not None and isinstance(found[1], str):
            return QualV(found[1])
        if found is None and name in _BUILTIN_NAMES and not self.c.module_scope.names.star_modules:
            return BuiltinV(name)
        defs = None if node is None else self.model.definitions(node)
        if defs is not None:
            return self.defs_value(defs)
        while scope is not None:
            v = self.scope_value(scope, name)
            if v is not _NOTBOUND:
                return v
            scope = scope.parent
        star = self.c.module_scope.names.star_modules
        if len(star) == 1 and name not in _BUILTIN_NAMES:
            return QualV(f"{star[0]}.{name}")
        if name in _BUILTIN_NAMES:
            return BuiltinV(name)
        return UNKNOWN

    def scope_value(self, scope: ScopeInfo, name: str) -> Any:
        """``name`` as code that runs after ``scope``'s body sees it: the join of every
        definition the model saw in that body, or its import."""
        defs = self.model.scope_definitions(scope.func.node if scope.func is not None else None, name)
        if defs is not None:
            return self.defs_value(defs)
        bound = scope.names.bindings.get(name)
        if bound is None:
            return _NOTBOUND
        return QualV(bound) if isinstance(bound, str) else UNKNOWN

    def defs_value(self, defs: Any) -> Any:
        if len(defs.items) > 12:
            return UNKNOWN
        return join([self.def_value(d) for d in defs.items])

    def def_value(self, d: Def) -> Any:
        """The value a definition gives (memoized: a constructor call is one object)."""
        if d in self._memo:
            return self._memo[d]
        if d in self._inprog or self.depth > MAX_DEPTH:
            return UNKNOWN  # a definition that reads itself (``x = x + 1`` in a loop)
        self._inprog.add(d)
        self.depth += 1
        try:
            value = self._def_value(d)
        finally:
            self._inprog.discard(d)
            self.depth -= 1
        self._memo[d] = value
        return value

    def _def_value(self, d: Def) -> Any:
        kind = d.kind
        if kind == "def":
            return self.c.func_info(d.node) or UNKNOWN
        if kind == "class":
            return self.c.class_info(d.node) or UNKNOWN
        if kind == "param":
            return self.param_value(d)
        if kind not in ("assign", "for") or d.node is None:
            return UNKNOWN
        v = self.eval(d.node, Frame(self.scope_of(d.scope), "top", bind=True))  # type: ignore[arg-type]
        if kind == "for":
            v = self.element_of(v)
        return self.destructure(v, d.path)

    def destructure(self, v: Any, path: tuple[int, ...]) -> Any:
        for i in path:
            if isinstance(v, tuple) and i < len(v):
                v = v[i]
            elif isinstance(v, ListV) and i < len(v.items) and not getattr(v, "poisoned", False):
                v = v.items[i]
            else:
                return UNKNOWN
        return v

    def param_value(self, d: Def) -> Any:
        """A parameter of a function of the file (not a method): the join of the arguments
        of its call sites, which the program model lists."""
        func = self.c.func_info(d.node)
        if func is None or func.owner is not None:
            return UNKNOWN
        found = self.model.call_sites(func.node)
        if not found or len(found) > 12 or not all(plain for _, plain in found):
            return UNKNOWN
        calls = {id(call) for call, _ in found}
        # A call by its name that the model did not follow (in a lambda, say) could pass anything.
        if any(id(s.node) not in calls for s in self.c.calls_named(func.name)):
            return UNKNOWN
        param = next((p for p in (*func.node.params.posonly_params, *func.node.params.params,
                                  *func.node.params.kwonly_params) if p.name.value == d.name), None)
        if param is None:
            return UNKNOWN
        vals = []
        for call, _ in found:
            site = self.c.site(call)
            if site is None or any(a.star for a in call.args):
                return UNKNOWN
            expr = None
            positional = [a for a in call.args if a.keyword is None]
            if d.index is not None and d.index < len(positional):
                expr = positional[d.index].value
            else:
                for a in call.args:
                    if a.keyword is not None and a.keyword.value == d.name:
                        expr = a.value
            if expr is None:
                if param.default is None:
                    return UNKNOWN
                vals.append(self.eval(param.default, Frame(func.scope.parent or func.scope, "top", bind=True)))
            else:
                vals.append(self.eval(expr, Frame(site.scope, "top", bind=True)))
        return join(vals)

    def element_of(self, v: Any) -> Any:
        if isinstance(v, IterV):
            return v.element
        if isinstance(v, LoaderV):
            return self.loader_batch(v)
        if isinstance(v, DatasetV):
            if v.sample is None or any(d is None for d in v.sample):
                return UNKNOWN
            return (TensorV(tuple(v.sample)), UNKNOWN)
        items = self.items_of(v)
        if items is not None:
            return join(items)
        return UNKNOWN

    def loader_batch(self, loader: LoaderV) -> Any:
        ds = loader.dataset
        if ds.sample is None or any(d is None for d in ds.sample):
            return UNKNOWN
        bs = loader.batch_size
        ev = InputEvidence((BATCH,) + tuple(ds.sample), "dataset", ds.name, ds.node, bs if is_int(bs) else None)
        images = TensorV((BATCH,) + tuple(ds.sample), origin=ev)
        return (images, TensorV((BATCH,), dtype="long"))

    def items_of(self, v: Any) -> list[Any] | None:
        if isinstance(v, tuple):
            return list(v)
        if isinstance(v, ListV):
            return None if getattr(v, "poisoned", False) else list(v.items)
        if isinstance(v, LayerV) and v.children is not None and not getattr(v, "poisoned", False):
            return list(v.children)
        if isinstance(v, DictV):
            return list(v.items.keys())
        if isinstance(v, str):
            return list(v)
        return None

    # ------------------------------------------------------------------ eval
    def eval(self, node: cst.BaseExpression, frame: Frame) -> Any:
        self.tick()
        method = getattr(self, "e_" + type(node).__name__, None)
        if method is None:
            return UNKNOWN
        return method(node, frame)

    def e_Integer(self, node: cst.Integer, frame: Frame) -> Any:
        try:
            return node.evaluated_value
        except (ValueError, SyntaxError):
            return UNKNOWN

    def e_Float(self, node: cst.Float, frame: Frame) -> Any:
        try:
            return float(node.value.replace("_", ""))
        except ValueError:
            return UNKNOWN

    def e_Imaginary(self, node, frame):
        return UNKNOWN

    def e_SimpleString(self, node: cst.SimpleString, frame: Frame) -> Any:
        v = node.evaluated_value
        return v if isinstance(v, str) else UNKNOWN

    def e_ConcatenatedString(self, node, frame):
        v = node.evaluated_value
        return v if isinstance(v, str) else UNKNOWN

    def e_FormattedString(self, node: cst.FormattedString, frame: Frame) -> Any:
        # f"fc{i}": attribute names built in loops (setattr/getattr).
        out = []
        for part in node.parts:
            if isinstance(part, cst.FormattedStringText):
                out.append(part.value)
                continue
            if part.conversion is not None or part.format_spec is not None:  # type: ignore[union-attr]
                return UNKNOWN
            v = self.eval(part.expression, frame)  # type: ignore[union-attr]
            if not (isinstance(v, (int, str)) and not isinstance(v, bool)):
                return UNKNOWN
            out.append(str(v))
        return "".join(out)

    def e_Name(self, node: cst.Name, frame: Frame) -> Any:
        n = node.value
        if n == "True":
            return True
        if n == "False":
            return False
        if n == "None":
            return None
        return self.lookup(n, frame, node)

    def e_Tuple(self, node: cst.Tuple, frame: Frame) -> Any:
        out: list[Any] = []
        for el in node.elements:
            v = self.eval(el.value, frame)
            if isinstance(el, cst.StarredElement):
                items = self.items_of(v)
                if items is None:
                    return UNKNOWN
                out.extend(items)
            else:
                out.append(v)
        return tuple(out)

    def e_List(self, node: cst.List, frame: Frame) -> Any:
        t = self.e_Tuple(node, frame)  # type: ignore[arg-type]
        return ListV(list(t)) if isinstance(t, tuple) else UNKNOWN

    def e_Dict(self, node: cst.Dict, frame: Frame) -> Any:
        items: dict[Any, Any] = {}
        for el in node.elements:
            if not isinstance(el, cst.DictElement):
                return UNKNOWN
            k = self.eval(el.key, frame)
            if not concrete(k):
                return UNKNOWN
            items[k] = self.eval(el.value, frame)
        return DictV(items)

    def e_Ellipsis(self, node, frame):
        return Ellipsis

    def e_Attribute(self, node: cst.Attribute, frame: Frame) -> Any:
        obj = self.eval(node.value, frame)
        return self.getattr_(obj, node.attr.value, frame)

    def getattr_(self, obj: Any, attr: str, frame: Frame) -> Any:
        if isinstance(obj, QualV):
            return QualV(f"{obj.qualname}.{attr}")
        if isinstance(obj, ModuleV):
            if attr in obj.attrs:
                return obj.attrs[attr]
            m = obj.cls.methods.get(attr)
            if m is not None:
                return BoundMethodV(m, obj)
            if attr in obj.cls.class_attrs:
                return self.eval(obj.cls.class_attrs[attr], Frame(obj.cls.scope, "top", bind=True))
            return MethodV(obj, attr)
        if isinstance(obj, TensorV) or (obj is UNKNOWN and frame.mode == "forward" and attr in ("view", "reshape", "flatten")):
            if isinstance(obj, TensorV):
                if attr == "shape":
                    return tuple(obj.dims) if not obj.open else UNKNOWN
                if attr == "ndim":
                    return len(obj.dims) if not obj.open else UNKNOWN
                if attr == "data":
                    return obj
                if attr in ("dtype", "device", "grad", "is_cuda"):
                    return UNKNOWN
            return MethodV(obj, attr)
        if isinstance(obj, LayerV):
            if attr in obj.params:
                return obj.params[attr]
            return MethodV(obj, attr)
        if isinstance(obj, (ListV, DictV, SuperV, LoaderV, IterV, DatasetV)):
            if isinstance(obj, LoaderV):
                if attr == "dataset":
                    return obj.dataset
                if attr == "batch_size":
                    return obj.batch_size
            return MethodV(obj, attr)
        if isinstance(obj, ClassInfo):
            if attr in obj.class_attrs:
                return self.eval(obj.class_attrs[attr], Frame(obj.scope, "top", bind=True))
            return UNKNOWN
        return UNKNOWN

    def e_Subscript(self, node: cst.Subscript, frame: Frame) -> Any:
        obj = self.eval(node.value, frame)
        elements: list[Any] = []
        for el in node.slice:
            s = el.slice
            if isinstance(s, cst.Index):
                if s.star is not None:
                    return UNKNOWN
                elements.append(self.eval(s.value, frame))
            elif isinstance(s, cst.Slice):
                parts = [None if p is None else self.eval(p, frame) for p in (s.lower, s.upper, s.step)]
                if any(p is UNKNOWN for p in parts):
                    elements.append(("slice", UNKNOWN, UNKNOWN, UNKNOWN))
                else:
                    elements.append(("slice", *parts))
            else:
                return UNKNOWN
        return self.subscript(obj, elements, node, frame)

    def subscript(self, obj: Any, elements: list[Any], node: cst.CSTNode, frame: Frame) -> Any:
        if isinstance(obj, TensorV):
            if obj.open or any(e is UNKNOWN or isinstance(e, TensorV) for e in elements):
                return UNKNOWN
            if any(isinstance(e, tuple) and e and e[0] == "slice" and any(p is UNKNOWN for p in e[1:]) for e in elements):
                return UNKNOWN
            dims = ops.index(obj.dims, elements)
            if dims is None:
                return UNKNOWN
            label = "[" + self.code(node).split("[", 1)[-1] if isinstance(node, cst.Subscript) else "[...]"
            return self._op(obj, dims, node, label)
        if len(elements) != 1:
            return UNKNOWN
        key = elements[0]
        if isinstance(key, tuple) and key and key[0] == "slice":
            lo, hi, st = key[1:]
            if not all(v is None or is_int(v) for v in (lo, hi, st)):
                return UNKNOWN
            sl = slice(lo, hi, st)
            if isinstance(obj, tuple):
                return obj[sl]
            if isinstance(obj, ListV) and not getattr(obj, "poisoned", False):
                return ListV(obj.items[sl])
            if isinstance(obj, str):
                return obj[sl]
            if isinstance(obj, LayerV) and obj.children is not None and not getattr(obj, "poisoned", False):
                names = obj.child_names[sl] if obj.child_names else None
                return LayerV(obj.kind, obj.qualname, None, {}, {}, obj.children[sl], names)
            return UNKNOWN
        if isinstance(obj, DictV):
            if concrete(key) and key in obj.items:
                return obj.items[key]
            return UNKNOWN
        if not is_int(key):
            return UNKNOWN
        if isinstance(obj, (tuple, str)):
            return obj[key] if -len(obj) <= key < len(obj) else UNKNOWN
        if isinstance(obj, ListV) and not getattr(obj, "poisoned", False):
            return obj.items[key] if -len(obj.items) <= key < len(obj.items) else UNKNOWN
        if isinstance(obj, LayerV) and obj.children is not None and not getattr(obj, "poisoned", False):
            return obj.children[key] if -len(obj.children) <= key < len(obj.children) else UNKNOWN
        return UNKNOWN

    def e_BinaryOperation(self, node: cst.BinaryOperation, frame: Frame) -> Any:
        a = self.eval(node.left, frame)
        b = self.eval(node.right, frame)
        return self.binop(type(node.operator).__name__, a, b)

    def binop(self, op: str, a: Any, b: Any) -> Any:
        if isinstance(a, TensorV) or isinstance(b, TensorV):
            if isinstance(a, TensorV) and isinstance(b, TensorV):
                if a.open or b.open:
                    return UNKNOWN
                dims = ops.broadcast(a.dims, b.dims)
                return UNKNOWN if dims is None else TensorV(dims, False, a.steps, dtype=a.dtype)
            t = a if isinstance(a, TensorV) else b
            other = b if t is a else a
            if other is UNKNOWN:
                return UNKNOWN
            return TensorV(t.dims, t.open, t.steps, t.flat_from, None, t.dtype)
        if a is BATCH or b is BATCH:
            if op in ("Multiply", "FloorDivide") and (a == 1 or b == 1) and not (a is BATCH and b is BATCH):
                return BATCH
            return UNKNOWN
        if isinstance(a, ListV) and isinstance(b, ListV) and op == "Add":
            if getattr(a, "poisoned", False) or getattr(b, "poisoned", False):
                return UNKNOWN
            return ListV(a.items + b.items)
        if isinstance(a, ListV) and is_int(b) and op == "Multiply" and 0 <= b <= MAX_ITER:
            return ListV(a.items * b)
        if not (concrete(a) and concrete(b)):
            return UNKNOWN
        try:
            if op == "Add":
                return a + b
            if op == "Subtract":
                return a - b
            if op == "Multiply":
                if isinstance(a, (str, tuple)) or isinstance(b, (str, tuple)):
                    n = b if isinstance(a, (str, tuple)) else a
                    if not is_int(n) or n > MAX_ITER:
                        return UNKNOWN
                return a * b
            if op == "Divide":
                return a / b
            if op == "FloorDivide":
                return a // b
            if op == "Modulo":
                return a % b if not isinstance(a, str) else UNKNOWN
            if op == "Power":
                if is_int(b) and b > 64:
                    return UNKNOWN
                return a ** b
        except (TypeError, ZeroDivisionError, OverflowError, ValueError):
            return UNKNOWN
        return UNKNOWN

    def e_UnaryOperation(self, node: cst.UnaryOperation, frame: Frame) -> Any:
        v = self.eval(node.expression, frame)
        op = type(node.operator).__name__
        if op == "Not":
            t = truth(v)
            return UNKNOWN if t is None else not t
        if op == "Minus" and isinstance(v, (int, float)) and not isinstance(v, bool):
            return -v
        if op == "Plus" and isinstance(v, (int, float)):
            return v
        if isinstance(v, TensorV):
            return v
        return UNKNOWN

    def e_BooleanOperation(self, node: cst.BooleanOperation, frame: Frame) -> Any:
        a = self.eval(node.left, frame)
        ta = truth(a)
        if ta is None:
            return UNKNOWN
        if isinstance(node.operator, cst.And):
            return self.eval(node.right, frame) if ta else a
        return a if ta else self.eval(node.right, frame)

    def e_Comparison(self, node: cst.Comparison, frame: Frame) -> Any:
        left = self.eval(node.left, frame)
        result = True
        for target in node.comparisons:
            right = self.eval(target.comparator, frame)
            r = self.compare(type(target.operator).__name__, left, right)
            if r is None:
                return UNKNOWN
            result = result and r
            left = right
        return result

    def compare(self, op: str, a: Any, b: Any) -> bool | None:
        if op in ("Is", "IsNot"):
            if b is None or a is None:
                other = a if b is None else b
                if other is None:
                    r = True
                elif other is UNKNOWN or other is BATCH:
                    return None
                else:
                    r = False
                return r if op == "Is" else not r
            return None
        if op in ("In", "NotIn"):
            items = self.items_of(b) if not isinstance(b, DictV) else list(b.items)
            if items is None or not concrete(a) or not all(concrete(x) for x in items):
                return None
            r = a in items
            return r if op == "In" else not r
        if not (concrete(a) and concrete(b)):
            return None
        try:
            return {
                "Equal": lambda: a == b,
                "NotEqual": lambda: a != b,
                "LessThan": lambda: a < b,
                "LessThanEqual": lambda: a <= b,
                "GreaterThan": lambda: a > b,
                "GreaterThanEqual": lambda: a >= b,
            }[op]()
        except (KeyError, TypeError):
            return None

    def e_IfExp(self, node: cst.IfExp, frame: Frame) -> Any:
        t = truth(self.eval(node.test, frame))
        if t is True:
            return self.eval(node.body, frame)
        if t is False:
            return self.eval(node.orelse, frame)
        return join([self.eval(node.body, frame), self.eval(node.orelse, frame)])

    def _comp(self, node, frame: Frame, make) -> Any:
        results: list[tuple[Frame, Any]] = []

        def walk(comp: cst.CompFor, f: Frame) -> bool:
            it = self.eval(comp.iter, f)
            items = self.items_of(it)
            if items is None or len(items) > MAX_ITER:
                return False
            for item in items:
                binds: dict[str, Any] = {}
                if not self._bind_pattern(comp.target, item, binds):
                    return False
                inner = f.child(binds)
                ok = True
                for cond in comp.ifs:
                    t = truth(self.eval(cond.test, inner))
                    if t is None:
                        return False
                    ok = ok and t
                if not ok:
                    continue
                if comp.inner_for_in is not None:
                    if not walk(comp.inner_for_in, inner):
                        return False
                else:
                    results.append((inner, None))
            return True

        try:
            if not walk(node.for_in, frame):
                return UNKNOWN
        finally:
            del walk  # it calls itself through its cell: a cycle that would hold the interpreter
        return make(results)

    def e_ListComp(self, node: cst.ListComp, frame: Frame) -> Any:
        return self._comp(node, frame, lambda rs: ListV([self.eval(node.elt, f) for f, _ in rs]))

    def e_GeneratorExp(self, node: cst.GeneratorExp, frame: Frame) -> Any:
        return self._comp(node, frame, lambda rs: tuple(self.eval(node.elt, f) for f, _ in rs))

    def _bind_pattern(self, target: cst.BaseExpression, value: Any, out: dict) -> bool:
        if isinstance(target, cst.Name):
            out[target.value] = value
            return True
        if isinstance(target, (cst.Tuple, cst.List)):
            items = self.items_of(value) if not isinstance(value, str) else None
            if items is None or len(items) != len(target.elements):
                for n in names_in(target):
                    out[n] = UNKNOWN
                return True
            for el, item in zip(target.elements, items):
                if isinstance(el, cst.StarredElement):
                    return False
                if not self._bind_pattern(el.value, item, out):
                    return False
            return True
        return False

    # ------------------------------------------------------------------ calls
    def e_Call(self, node: cst.Call, frame: Frame) -> Any:
        # At the top level a constructor call is one object, however often it is read.
        if frame.bind and id(node) in self.instances:
            return self.instances[id(node)]
        result = self._call_expr(node, frame)
        if frame.bind and isinstance(result, (LayerV, ModuleV, DatasetV, LoaderV)) and not frame.overrides:
            self.instances[id(node)] = result
        return result

    def _call_expr(self, node: cst.Call, frame: Frame) -> Any:
        func = self.eval(node.func, frame)
        args: list[tuple[Any, cst.BaseExpression | None]] = []
        kwargs: dict[str, tuple[Any, cst.BaseExpression | None]] = {}
        for a in node.args:
            if a.star == "*":
                v = self.eval(a.value, frame)
                items = self.items_of(v)
                if items is None:
                    return self._unknown_call(func, node, frame)
                args.extend((i, None) for i in items)
            elif a.star == "**":
                v = self.eval(a.value, frame)
                if not isinstance(v, DictV) or not all(isinstance(k, str) for k in v.items):
                    return self._unknown_call(func, node, frame)
                for k, val in v.items.items():
                    kwargs[k] = (val, None)
            elif a.keyword is not None:
                kwargs[a.keyword.value] = (self.eval(a.value, frame), a.value)
            else:
                args.append((self.eval(a.value, frame), a.value))
        return self.call(func, args, kwargs, node, frame)

    def _unknown_call(self, func: Any, node: cst.Call, frame: Frame) -> Any:
        if frame.mode == "forward" and isinstance(func, (LayerV, ModuleV)):
            raise Stop(node, "call with unpacked arguments")
        return UNKNOWN

    def call(self, func: Any, args: list, kwargs: dict, node: cst.Call, frame: Frame) -> Any:
        if isinstance(func, QualV):
            return self.call_qual(func.qualname, args, kwargs, node, frame)
        if isinstance(func, ClassInfo):
            return self.instantiate(func, args, kwargs, node, frame)
        if isinstance(func, FuncInfo):
            return self.call_function(func, args, kwargs, frame.mode, node, frame=frame)
        if isinstance(func, BoundMethodV):
            return self.call_function(func.func, [(func.self_value, None)] + args, kwargs, frame.mode, node,
                                      frame=frame, self_value=func.self_value)
        if isinstance(func, (LayerV, ModuleV)):
            if frame.mode != "forward":
                return self.output_of(func, args, kwargs, node, frame) if self.outputs else UNKNOWN
            label = frame.prefix + _strip_self(self.code(node.func))
            return self.apply_module(func, args, kwargs, node, frame, label, node)
        if isinstance(func, MethodV):
            return self.call_method(func, args, kwargs, node, frame)
        if isinstance(func, BuiltinV):
            return self.call_builtin(func.name, args, kwargs, node, frame)
        return UNKNOWN

    def output_of(self, m: Any, args: list, kwargs: dict, node: cst.Call, frame: Frame) -> Any:
        """What a model of the file gives for one known tensor, outside any run: its forward
        followed on that input; unknown if it stops or any size does not fit."""
        if self.run is not None or kwargs or len(args) != 1:
            return UNKNOWN
        x = args[0][0]
        if not isinstance(x, TensorV) or x.open:
            return UNKNOWN
        run = self.run = Run("", x.origin)
        try:
            out = self.apply_module(m, args, {}, node, Frame(frame.scope, "forward"), "", node)
        except Stop:
            return UNKNOWN
        finally:
            self.run = None
        return UNKNOWN if run.problems else out

    def call_function(self, func: FuncInfo, args: list, kwargs: dict, mode: str, node: cst.CSTNode | None, *,
                      frame: Frame | None = None, self_value: Any = None, prefix: str | None = None) -> Any:
        if self.depth > MAX_DEPTH:
            if mode == "forward":
                raise Stop(node, "too deep")
            return UNKNOWN
        fn = func.node
        params = fn.params
        positional = [*params.posonly_params, *params.params]
        env: dict[str, Any] = {}
        defaults_frame = Frame(func.scope.parent or func.scope, "top", bind=True)
        for i, p in enumerate(positional):
            name = p.name.value
            if i < len(args):
                env[name] = args[i][0]
                if name in kwargs:
                    return UNKNOWN
            elif name in kwargs:
                env[name] = kwargs[name][0]
            elif p.default is not None:
                env[name] = self.eval(p.default, defaults_frame)
            else:
                env[name] = UNKNOWN
        extra = args[len(positional):]
        if extra:
            if isinstance(params.star_arg, cst.Param):
                env[params.star_arg.name.value] = tuple(a[0] for a in extra)
            else:
                return UNKNOWN
        elif isinstance(params.star_arg, cst.Param):
            env[params.star_arg.name.value] = ()
        for p in params.kwonly_params:
            name = p.name.value
            if name in kwargs:
                env[name] = kwargs[name][0]
            elif p.default is not None:
                env[name] = self.eval(p.default, defaults_frame)
            else:
                env[name] = UNKNOWN
        known = {p.name.value for p in (*positional, *params.kwonly_params)}
        rest = {k: v[0] for k, v in kwargs.items() if k not in known}
        if rest:
            if isinstance(params.star_kwarg, cst.Param):
                env[params.star_kwarg.name.value] = DictV(rest)
            else:
                return UNKNOWN
        elif isinstance(params.star_kwarg, cst.Param):
            env[params.star_kwarg.name.value] = DictV({})
        new = Frame(func.scope, mode, env=env, self_value=self_value, cls=func.owner,
                    prefix=prefix if prefix is not None else (frame.prefix if frame is not None else ""))
        self.depth += 1
        try:
            self.exec_suite(fn.body, new)
            result = None
        except _Return as r:
            result = r.value
        except _Abort:
            if mode == "init" and isinstance(self_value, ModuleV) and fn.name.value == "__init__":
                raise
            return UNKNOWN
        except (_Break, _Continue, _LoopUnknown):
            return UNKNOWN
        finally:
            self.depth -= 1
        if new.tainted:
            return UNKNOWN
        return result

    def instantiate(self, cls: ClassInfo, args: list, kwargs: dict, node: cst.Call | None, frame: Frame | None) -> Any:
        if not self.is_module(cls):
            return UNKNOWN
        if frame is not None and frame.bind and node is not None and id(node) in self.instances:
            return self.instances[id(node)]
        self.instantiated[id(cls)] = self.instantiated.get(id(cls), 0) + 1
        inst = ModuleV(cls, {}, node)
        init = cls.methods.get("__init__")
        if init is not None:
            try:
                self.call_function(init, [(inst, None)] + args, kwargs, "init", node, self_value=inst, prefix="")
            except _Abort:
                inst.complete = False
            except Stop:
                inst.complete = False
        if frame is not None and frame.bind and node is not None:
            self.instances[id(node)] = inst
        return inst

    # ---------------------------------------------------------- qualified calls
    def call_qual(self, q: str, args: list, kwargs: dict, node: cst.Call, frame: Frame) -> Any:
        last = q.rsplit(".", 1)[-1]
        if q.startswith("torch.nn.functional."):
            return self.functional(last, args, kwargs, node, frame)
        if q in ("torch.nn.Sequential", "torch.nn.modules.container.Sequential"):
            return self.make_sequential(args, kwargs, node)
        if q in ("torch.nn.ModuleList", "torch.nn.modules.container.ModuleList"):
            if kwargs or len(args) > 1:
                return UNKNOWN
            items = [] if not args else self.items_of(args[0][0])
            if items is None:
                return UNKNOWN
            return LayerV("ModuleList", q, node, {}, {}, list(items), None)
        if q in ("torch.nn.DataParallel", "torch.nn.parallel.DistributedDataParallel", "torch.compile",
                 "torch.nn.parallel.DataParallel", "copy.deepcopy", "torch.autograd.Variable"):
            return args[0][0] if args else UNKNOWN
        kind = L.layer_kind(q)
        if kind is not None:
            return self.make_layer(kind, q, args, kwargs, node)
        if q.startswith("torch.") and q.count(".") == 1:
            return self.torch_function(last, args, kwargs, node, frame)
        if q.startswith("torchvision.datasets."):
            return self.make_dataset(last, q, args, kwargs, node)
        if q.startswith("torchvision.transforms."):
            return TransformV(last, {k: v[0] for k, v in kwargs.items()} | {f"_{i}": a[0] for i, a in enumerate(args)},
                              self.items_of(args[0][0]) if last in ("Compose", "RandomApply", "RandomChoice", "RandomOrder") and args else None)
        if q in ("torch.utils.data.DataLoader", "torch.utils.data.dataloader.DataLoader"):
            return self.make_loader(args, kwargs, node)
        if q in ("torch.utils.data.Subset", "torch.utils.data.dataset.Subset"):
            return args[0][0] if args and isinstance(args[0][0], DatasetV) else UNKNOWN
        if q in ("torch.utils.data.random_split", "torch.utils.data.dataset.random_split"):
            ds = args[0][0] if args else UNKNOWN
            lengths = self.items_of(args[1][0]) if len(args) > 1 else None
            if isinstance(ds, DatasetV) and lengths is not None and len(lengths) <= MAX_ITER:
                return tuple(ds for _ in lengths)
            return UNKNOWN
        if q in ("tqdm.tqdm", "tqdm.auto.tqdm", "tqdm.notebook.tqdm", "tqdm"):
            return args[0][0] if args else UNKNOWN
        if q in ("collections.OrderedDict", "typing.OrderedDict"):
            if not args:
                return DictV({})
            items = self.items_of(args[0][0])
            out: dict[Any, Any] = {}
            if items is None:
                return UNKNOWN
            for it in items:
                if not (isinstance(it, tuple) and len(it) == 2 and concrete(it[0])):
                    return UNKNOWN
                out[it[0]] = it[1]
            return DictV(out)
        if q in ("math.prod", "numpy.prod"):
            items = self.items_of(args[0][0]) if args else None
            if items is None or not all(is_int(i) for i in items):
                return UNKNOWN
            return math.prod(items)
        if q in ("math.floor", "math.ceil", "math.sqrt") and args and isinstance(args[0][0], (int, float)) and not isinstance(args[0][0], bool):
            return getattr(math, last)(args[0][0])
        return UNKNOWN

    def make_layer(self, kind: str, q: str, args: list, kwargs: dict, node: cst.Call) -> Any:
        bound = L.bind_args(kind, args, kwargs)
        if bound is None:
            return LayerV("unknown", q, node)
        params, arg_nodes = bound
        # Only the outermost constructor call's own arguments can be fixed in place.
        self.constructed[id(node)] = self.constructed.get(id(node), 0) + 1
        if kind not in L.SIGNATURES and kind not in L.ELEMENTWISE:
            return LayerV("unknown", q, node)
        return LayerV(kind, q, node, params, arg_nodes)

    def make_sequential(self, args: list, kwargs: dict, node: cst.Call) -> Any:
        if kwargs:
            return UNKNOWN
        if len(args) == 1 and isinstance(args[0][0], DictV):
            d = args[0][0]
            names = [str(k) for k in d.items]
            return LayerV("Sequential", "torch.nn.Sequential", node, {}, {}, list(d.items.values()), names)
        return LayerV("Sequential", "torch.nn.Sequential", node, {}, {}, [a[0] for a in args], None)

    def torch_function(self, name: str, args: list, kwargs: dict, node: cst.Call, frame: Frame) -> Any:
        if name in _FACTORIES:
            return self.factory(name, args, kwargs, node, frame)
        if name in ("zeros_like", "ones_like", "randn_like", "rand_like", "empty_like"):
            x = args[0][0] if args else UNKNOWN
            return TensorV(x.dims, x.open) if isinstance(x, TensorV) else UNKNOWN
        if name in _ELEMENTWISE_FUNCS:
            x = args[0][0] if args else UNKNOWN
            return self._same(x) if isinstance(x, TensorV) else UNKNOWN
        if name == "flatten":
            return self.tensor_method(args[0][0] if args else UNKNOWN, "flatten", args[1:], kwargs, node, frame, default_start=0, functional=True)
        if name in ("reshape", "squeeze", "unsqueeze", "transpose", "permute", "t", "mean", "sum", "max", "min", "amax", "amin"):
            if not args:
                return UNKNOWN
            return self.tensor_method(args[0][0], name, args[1:], kwargs, node, frame, functional=True)
        if name in ("cat", "concat", "stack"):
            return self.cat(name, args, kwargs, node)
        return UNKNOWN

    def factory(self, name: str, args: list, kwargs: dict, node: cst.Call, frame: Frame) -> Any:
        vals = [a[0] for a in args]
        high = None
        if name == "randint":
            if "size" in kwargs:
                size = kwargs["size"][0]
                bounds = vals
            elif vals and isinstance(vals[-1], tuple):
                size = vals[-1]
                bounds = vals[:-1]
            else:
                return UNKNOWN
            if "high" in kwargs:
                bounds = bounds + [kwargs["high"][0]]
            high = bounds[-1] if bounds and is_int(bounds[-1]) else None
            if high is None:
                return UNKNOWN
        elif name == "full":
            size = vals[0] if vals else kwargs.get("size", (UNKNOWN,))[0]
        elif "size" in kwargs:
            size = kwargs["size"][0]
        elif len(vals) == 1 and isinstance(vals[0], (tuple, ListV)):
            size = tuple(vals[0].items) if isinstance(vals[0], ListV) else vals[0]
        else:
            size = tuple(vals)
        if not isinstance(size, tuple):
            return UNKNOWN
        dims = tuple(ops.as_dim(d) for d in size)
        dtype = "long" if name == "randint" else "float"
        dt = kwargs.get("dtype")
        if dt is not None:
            d = dt[0]
            if isinstance(d, QualV) and d.qualname in ("torch.long", "torch.int64", "torch.int", "torch.int32"):
                dtype = "long"
            elif not (isinstance(d, QualV) and d.qualname in ("torch.float", "torch.float32")):
                return UNKNOWN
        if frame.mode == "top" and all(is_int(d) for d in dims) and len(dims) >= 1:
            batch = dims[0] if len(dims) >= 2 else None
            shaped = ((BATCH,) + dims[1:]) if len(dims) >= 2 else dims
            return TensorV(shaped, dtype=dtype, origin=InputEvidence(shaped, "tensor", self.code(node), node, batch, dtype, high))
        return TensorV(dims, dtype=dtype)

    def cat(self, name: str, args: list, kwargs: dict, node: cst.Call) -> Any:
        if not args:
            return UNKNOWN
        items = self.items_of(args[0][0])
        dim = args[1][0] if len(args) > 1 else kwargs.get("dim", (0,))[0]
        if items is None or not items or not is_int(dim) or not all(isinstance(t, TensorV) and not t.open for t in items):
            return UNKNOWN
        rank = len(items[0].dims)
        if any(len(t.dims) != rank for t in items):
            return UNKNOWN
        if name == "stack":
            d = ops.norm_index(dim, rank + 1)
            if d is None:
                return UNKNOWN
            base = items[0].dims
            return self._op(items[0], base[:d] + (len(items),) + base[d:], node, "torch.stack")
        d = ops.norm_index(dim, rank)
        if d is None:
            return UNKNOWN
        out = list(items[0].dims)
        total = 0
        for t in items:
            if not is_int(t.dims[d]):
                total = None
                break
            total += t.dims[d]
        out[d] = total
        for i in range(rank):
            if i != d and not all(t.dims[i] == out[i] for t in items):
                out[i] = None
        return self._op(items[0], tuple(out), node, "torch.cat")

    def _same(self, x: TensorV) -> TensorV:
        return TensorV(x.dims, x.open, x.steps, x.flat_from, x.view_link, x.dtype, x.origin)

    # ----------------------------------------------------------- torchvision
    def make_dataset(self, name: str, q: str, args: list, kwargs: dict, node: cst.Call) -> Any:
        if name not in _DATASETS or "transforms" in kwargs:
            return UNKNOWN
        display, base = _DATASETS[name]
        transform = None
        if "transform" in kwargs:
            transform = kwargs["transform"][0]
        elif len(args) > _TRANSFORM_POS.get(name, 99):
            transform = args[_TRANSFORM_POS[name]][0]
        elif len(args) > 1 and name not in _TRANSFORM_POS:
            return UNKNOWN
        if name == "FakeData":
            size = kwargs.get("image_size", (args[1] if len(args) > 1 else ((3, 224, 224), None)))[0]
            if not (isinstance(size, tuple) and len(size) == 3 and all(is_int(d) for d in size)):
                return UNKNOWN
            base = size  # type: ignore[assignment]
        if transform is None:
            return DatasetV(display, q, None, node)
        applied: list[str] = []
        sample = self.apply_transform(transform, (base[0], base[1], base[2], False), applied)
        if sample is None or not sample[3]:
            return DatasetV(display, q, None, node)
        c, h, w, _ = sample
        if not (is_int(c) and is_int(h) and is_int(w)):
            return DatasetV(display, q, None, node)
        if applied:
            display = f"{display} (after {', '.join(dict.fromkeys(applied))})"
        return DatasetV(display, q, (c, h, w), node)

    def apply_transform(self, t: Any, state: tuple, applied: list[str] | None = None) -> tuple | None:
        """state = (C, H, W, is_tensor); None when a step cannot be followed.
        ``applied`` collects the transforms that changed the size."""
        if not isinstance(t, TransformV):
            return None
        out = self._transform(t, state, applied if applied is not None else [])
        if out is not None and out[:3] != state[:3] and t.op != "Compose" and applied is not None:
            applied.append(t.op)
        return out

    def _transform(self, t: TransformV, state: tuple, applied: list[str]) -> tuple | None:
        c, h, w, tensor = state
        op, p = t.op, t.params

        def size_arg(default_key: str = "_0") -> tuple | None:
            v = p.get("size", p.get(default_key))
            if is_int(v):
                return (v, v)
            if isinstance(v, (tuple, ListV)):
                items = v.items if isinstance(v, ListV) else list(v)
                if len(items) == 1 and is_int(items[0]):
                    return (items[0], items[0])
                if len(items) == 2 and all(is_int(i) for i in items):
                    return (items[0], items[1])
            return None

        if op == "Compose":
            if t.items is None:
                return None
            for inner in t.items:
                state = self.apply_transform(inner, state, applied)  # type: ignore[assignment]
                if state is None:
                    return None
            return state
        if op in _TO_TENSOR:
            return (c, h, w, True)
        if op in _SHAPE_KEEPING_TRANSFORMS:
            return state
        if op == "RandomRotation":
            return state if p.get("expand", False) is False else None
        if op in ("RandomApply", "RandomChoice", "RandomOrder"):
            if t.items is None:
                return None
            for inner in t.items:
                if self.apply_transform(inner, state) != state:
                    return None
            return state
        if op == "Grayscale":
            n = p.get("num_output_channels", p.get("_0", 1))
            return (n, h, w, tensor) if is_int(n) else None
        if op == "Resize":
            if "max_size" in p:
                return None
            v = p.get("size", p.get("_0"))
            if is_int(v) or (isinstance(v, (tuple, ListV)) and len(v.items if isinstance(v, ListV) else v) == 1):
                s = v if is_int(v) else (v.items if isinstance(v, ListV) else v)[0]
                if not is_int(s):
                    return None
                if is_int(h) and h == w:
                    return (c, s, s, tensor)
                if is_int(h) and is_int(w):
                    short, long_ = min(h, w), max(h, w)
                    other = int(s * long_ / short)
                    return (c, s, other, tensor) if h <= w else (c, other, s, tensor)
                return (c, None, None, tensor)
            sz = size_arg()
            return (c, sz[0], sz[1], tensor) if sz else None
        if op in ("CenterCrop", "RandomResizedCrop"):
            sz = size_arg()
            return (c, sz[0], sz[1], tensor) if sz else None
        if op == "RandomCrop":
            sz = size_arg()
            if sz is None:
                return None
            pad = p.get("padding", p.get("_1", None))
            ph = pw = 0
            if is_int(pad):
                ph = pw = pad
            elif pad is not None:
                return None
            if p.get("pad_if_needed", False) is True:
                return (c, sz[0], sz[1], tensor)
            if is_int(h) and is_int(w) and h + 2 * ph >= sz[0] and w + 2 * pw >= sz[1]:
                return (c, sz[0], sz[1], tensor)
            return None
        if op == "Pad":
            pad = p.get("padding", p.get("_0"))
            if not (is_int(h) and is_int(w)):
                return None
            if is_int(pad):
                return (c, h + 2 * pad, w + 2 * pad, tensor)
            items = pad.items if isinstance(pad, ListV) else list(pad) if isinstance(pad, tuple) else None
            if items and all(is_int(i) for i in items):
                if len(items) == 2:
                    return (c, h + 2 * items[1], w + 2 * items[0], tensor)
                if len(items) == 4:
                    return (c, h + items[1] + items[3], w + items[0] + items[2], tensor)
            return None
        return None

    def make_loader(self, args: list, kwargs: dict, node: cst.Call) -> Any:
        ds = args[0][0] if args else kwargs.get("dataset", (UNKNOWN,))[0]
        if not isinstance(ds, DatasetV):
            return UNKNOWN
        if any(k in kwargs for k in ("collate_fn", "batch_sampler")):
            return UNKNOWN
        if len(args) > 2:
            return UNKNOWN
        bs = args[1][0] if len(args) > 1 else kwargs.get("batch_size", (1,))[0]
        if bs is None:
            return UNKNOWN
        return LoaderV(ds, bs if is_int(bs) else UNKNOWN, node)

    # ------------------------------------------------------------- builtins
    def call_builtin(self, name: str, args: list, kwargs: dict, node: cst.Call, frame: Frame) -> Any:
        vals = [a[0] for a in args]
        if name == "super":
            return SuperV(frame.self_value)
        if name == "len":
            if len(vals) != 1:
                return UNKNOWN
            v = vals[0]
            if isinstance(v, TensorV):
                return v.dims[0] if v.dims and not v.open and (is_int(v.dims[0]) or v.dims[0] is BATCH) else UNKNOWN
            items = self.items_of(v)
            return len(items) if items is not None else UNKNOWN
        if name == "range":
            if not vals or len(vals) > 3 or not all(is_int(v) for v in vals):
                return UNKNOWN
            r = range(*vals)
            return tuple(r) if len(r) <= MAX_ITER else UNKNOWN
        if name in ("int", "float", "bool", "abs", "round") and len(vals) == 1:
            v = vals[0]
            if isinstance(v, (int, float)) and not (name == "round" and isinstance(v, bool)):
                try:
                    return {"int": int, "float": float, "bool": bool, "abs": abs, "round": round}[name](v)
                except (ValueError, OverflowError):
                    return UNKNOWN
            if name == "int" and v is BATCH:
                return BATCH
            return UNKNOWN
        if name in ("min", "max", "sum"):
            items = self.items_of(vals[0]) if len(vals) == 1 else vals
            if items is None or not items and name != "sum" or not all(isinstance(i, (int, float)) and not isinstance(i, bool) for i in items):
                return UNKNOWN
            return {"min": min, "max": max, "sum": sum}[name](items)
        if name in ("list", "tuple"):
            if not vals:
                return ListV([]) if name == "list" else ()
            items = self.items_of(vals[0])
            if items is None:
                if isinstance(vals[0], IterV):
                    return UNKNOWN
                return UNKNOWN
            return ListV(items) if name == "list" else tuple(items)
        if name == "zip":
            lists = [self.items_of(v) for v in vals]
            if all(lst is not None for lst in lists):
                return tuple(zip(*lists))  # type: ignore[arg-type]
            return IterV(tuple(self.element_of(v) for v in vals))
        if name == "enumerate":
            if not vals:
                return UNKNOWN
            items = self.items_of(vals[0])
            start = vals[1] if len(vals) > 1 else kwargs.get("start", (0,))[0]
            if items is not None and is_int(start):
                return tuple((start + i, v) for i, v in enumerate(items))
            return IterV((UNKNOWN, self.element_of(vals[0])))
        if name == "reversed":
            items = self.items_of(vals[0]) if vals else None
            return tuple(reversed(items)) if items is not None else UNKNOWN
        if name == "sorted":
            items = self.items_of(vals[0]) if vals else None
            if items is None or not all(concrete(i) for i in items) or kwargs:
                return UNKNOWN
            try:
                return ListV(sorted(items))
            except TypeError:
                return UNKNOWN
        if name == "iter":
            if len(vals) != 1:
                return UNKNOWN
            return IterV(self.element_of(vals[0]))
        if name == "next":
            if not vals:
                return UNKNOWN
            v = vals[0]
            return v.element if isinstance(v, IterV) else UNKNOWN
        if name == "setattr" and len(vals) == 3 and isinstance(vals[0], ModuleV):
            if isinstance(vals[1], str):
                vals[0].attrs[vals[1]] = vals[2]
            else:
                # Any attribute may have been replaced: the module cannot be followed.
                vals[0].complete = False
            return None
        if name == "getattr" and len(vals) in (2, 3) and isinstance(vals[1], str):
            return self.getattr_(vals[0], vals[1], frame)
        if name == "print":
            return None
        if name == "isinstance":
            return UNKNOWN
        return UNKNOWN

    # -------------------------------------------------------------- methods
    def call_method(self, m: MethodV, args: list, kwargs: dict, node: cst.Call, frame: Frame) -> Any:
        r, name = m.receiver, m.name
        vals = [a[0] for a in args]
        if isinstance(r, TensorV) or r is UNKNOWN:
            return self.tensor_method(r, name, args, kwargs, node, frame)
        if isinstance(r, ListV):
            if getattr(r, "poisoned", False):
                return UNKNOWN
            if name == "append" and len(vals) == 1:
                r.items.append(vals[0])
                return None
            if name == "extend" and len(vals) == 1:
                items = self.items_of(vals[0])
                if items is None:
                    r.poisoned = True  # type: ignore[attr-defined]
                else:
                    r.items.extend(items)
                return None
            if name == "insert" and len(vals) == 2 and is_int(vals[0]):
                r.items.insert(vals[0], vals[1])
                return None
            if name in ("pop", "remove", "clear", "reverse", "sort"):
                r.poisoned = True  # type: ignore[attr-defined]
                return UNKNOWN
            return UNKNOWN
        if isinstance(r, DictV):
            if name == "keys":
                return tuple(r.items.keys())
            if name == "values":
                return tuple(r.items.values())
            if name == "items":
                return tuple(r.items.items())
            if name == "get" and vals and concrete(vals[0]):
                return r.items.get(vals[0], vals[1] if len(vals) > 1 else None)
            return UNKNOWN
        if isinstance(r, LayerV):
            if name in ("append", "add_module", "insert", "extend", "register_module") and r.children is not None:
                if getattr(r, "poisoned", False):
                    return UNKNOWN
                if name == "append" and len(vals) == 1:
                    r.children.append(vals[0])
                    if r.child_names is not None:
                        r.child_names.append(str(len(r.children) - 1))
                    return r
                if name in ("add_module", "register_module") and len(vals) == 2 and isinstance(vals[0], str):
                    r.children.append(vals[1])
                    names = r.child_names if r.child_names is not None else [str(i) for i in range(len(r.children) - 1)]
                    names.append(vals[0])
                    r.child_names = names
                    return None
                if name == "extend" and len(vals) == 1:
                    items = self.items_of(vals[0])
                    if items is not None and r.child_names is None:
                        r.children.extend(items)
                        return r
                r.poisoned = True  # type: ignore[attr-defined]
                return UNKNOWN
            if name in ("to", "cuda", "cpu", "eval", "train", "float", "requires_grad_"):
                return r
            if name == "forward" and frame.mode == "forward":
                return self.apply_module(r, args, kwargs, node, frame, frame.prefix + _strip_self(self.code(node.func)), node)
            return UNKNOWN
        if isinstance(r, ModuleV):
            if name in ("add_module", "register_module") and len(vals) == 2:
                if isinstance(vals[0], str):
                    r.attrs[vals[0]] = vals[1]
                else:
                    r.complete = False
                return None
            if name in ("register_buffer", "register_parameter"):
                return None
            if name in ("to", "cuda", "cpu", "eval", "train", "float", "requires_grad_", "apply", "share_memory"):
                return r
            return UNKNOWN
        if isinstance(r, SuperV):
            if name == "__init__":
                return None
            return UNKNOWN
        if isinstance(r, (LoaderV, DatasetV, IterV)):
            if name == "__iter__":
                return IterV(self.element_of(r))
            if name in ("next", "__next__") and isinstance(r, IterV):
                return r.element
            return UNKNOWN
        return UNKNOWN

    def tensor_method(self, x: Any, name: str, args: list, kwargs: dict, node: cst.Call, frame: Frame,
                      default_start: int = 0, functional: bool = False) -> Any:
        vals = [a[0] for a in args]
        if name in ("view", "reshape"):
            return self.reshape(x, name, args, kwargs, node, frame, functional)
        if name == "flatten":
            start = vals[0] if vals else kwargs.get("start_dim", (default_start,))[0]
            end = vals[1] if len(vals) > 1 else kwargs.get("end_dim", (-1,))[0]
            if not isinstance(x, TensorV) or x.open or not (is_int(start) and is_int(end)):
                return UNKNOWN
            dims = ops.flatten(x.dims, start, end)
            if dims is None:
                return UNKNOWN
            flat_from = x.dims[1:] if x.batched and start == 1 and end == -1 and len(x.dims) > 2 else None
            step = Step(node, self._op_label(node, name, functional), x.dims, dims, kind="reshape")
            return x.with_dims(dims, step=step, flat_from=flat_from)
        if not isinstance(x, TensorV):
            return UNKNOWN
        if name in _TENSOR_SAME:
            out = self._same(x)
            if name in _TENSOR_LONG:
                out.dtype = "long"
            return out
        if name in _TENSOR_LONG:
            return TensorV(x.dims, x.open, x.steps, dtype="long")
        if name in ("size", "dim", "ndimension", "numel") and x.open:
            return UNKNOWN
        if name == "size":
            if not vals and not kwargs:
                return tuple(x.dims)
            i = vals[0] if vals else kwargs.get("dim", (UNKNOWN,))[0]
            if not is_int(i):
                return UNKNOWN
            n = ops.norm_index(i, len(x.dims))
            if n is None:
                return UNKNOWN
            d = x.dims[n]
            return d if d is not None else UNKNOWN
        if name in ("dim", "ndimension"):
            return len(x.dims)
        if name == "numel":
            p = ops.prod_dim(x.dims)
            return p if is_int(p) else UNKNOWN
        if x.open:
            return UNKNOWN
        if name == "unsqueeze":
            d = vals[0] if vals else kwargs.get("dim", (UNKNOWN,))[0]
            n = ops.norm_index(d, len(x.dims) + 1) if is_int(d) else None
            if n is None:
                return UNKNOWN
            return self._op(x, x.dims[:n] + (1,) + x.dims[n:], node, name)
        if name == "squeeze":
            if not vals and not kwargs:
                if all(is_int(d) for d in x.dims):
                    return self._op(x, tuple(d for d in x.dims if d != 1), node, name)
                return UNKNOWN
            d = vals[0] if vals else kwargs.get("dim", (UNKNOWN,))[0]
            n = ops.norm_index(d, len(x.dims)) if is_int(d) else None
            if n is None:
                return UNKNOWN
            if x.dims[n] == 1:
                return self._op(x, x.dims[:n] + x.dims[n + 1:], node, name)
            if is_int(x.dims[n]):
                return self._op(x, x.dims, node, name)
            return UNKNOWN
        if name in ("permute",):
            order = vals[0] if len(vals) == 1 and isinstance(vals[0], tuple) else tuple(vals)
            if len(order) != len(x.dims) or not all(is_int(o) for o in order):
                return UNKNOWN
            idx = [ops.norm_index(o, len(x.dims)) for o in order]
            if None in idx or len(set(idx)) != len(idx):
                return UNKNOWN
            return self._op(x, tuple(x.dims[i] for i in idx), node, name)
        if name in ("transpose", "swapaxes"):
            if len(vals) != 2 or not all(is_int(v) for v in vals):
                return UNKNOWN
            a, b = (ops.norm_index(v, len(x.dims)) for v in vals)
            if a is None or b is None:
                return UNKNOWN
            dims = list(x.dims)
            dims[a], dims[b] = dims[b], dims[a]
            return self._op(x, tuple(dims), node, name)
        if name == "t":
            return self._op(x, tuple(reversed(x.dims)), node, name) if len(x.dims) <= 2 else UNKNOWN
        if name in ("mean", "sum", "amax", "amin", "prod", "std", "var", "max", "min", "argmax"):
            axes = vals[0] if vals else kwargs.get("dim", (None,))[0]
            keep = vals[1] if len(vals) > 1 else kwargs.get("keepdim", (False,))[0]
            if not isinstance(keep, bool) or axes is UNKNOWN:
                return UNKNOWN
            if name in ("max", "min") and axes is not None and isinstance(axes, TensorV):
                return UNKNOWN
            dims = ops.reduce_dims(x.dims, axes, keep)
            if dims is None:
                return UNKNOWN
            out = self._op(x, dims, node, name)
            if name == "argmax":
                out.dtype = "long"
            if name in ("max", "min") and axes is not None:
                return (out, TensorV(dims, dtype="long"))
            return out
        if name in ("view_as", "reshape_as", "expand_as") and vals and isinstance(vals[0], TensorV):
            return x.with_dims(vals[0].dims, open=vals[0].open)
        return UNKNOWN

    def _op(self, x: TensorV, dims: tuple, node: cst.CSTNode, name: str) -> TensorV:
        """A tensor op that changes the shape, as a step of the chain. Only cat/stack
        make new sizes; the others rearrange (and are not named as producers)."""
        kind = "op" if name in ("torch.cat", "torch.stack") else "reshape"
        return x.with_dims(dims, step=Step(node, name, x.dims, dims, x.open, False, kind))

    def _op_label(self, node: cst.Call, name: str, functional: bool = False) -> str:
        parts = [self.code(a.value) for a in node.args if a.keyword is None and not a.star]
        if functional:
            parts = parts[1:]
        kw = [f"{a.keyword.value}={self.code(a.value)}" for a in node.args if a.keyword is not None]
        return f"{name}({', '.join(parts + kw)})"

    def reshape(self, x: Any, name: str, args: list, kwargs: dict, node: cst.Call, frame: Frame, functional: bool = False) -> Any:
        vals = [a[0] for a in args]
        if not vals and "shape" in kwargs:
            vals = [kwargs["shape"][0]]
        if len(vals) == 1 and isinstance(vals[0], (tuple, ListV)):
            target = list(vals[0].items if isinstance(vals[0], ListV) else vals[0])
            nodes = None
        else:
            target = vals
            nodes = [a[1] for a in args]
        if not target:
            return UNKNOWN
        target = [t if (is_int(t) or t is BATCH) else None for t in target]
        label = self._op_label(node, name, functional)
        if not isinstance(x, TensorV):
            dims = tuple(None if (is_int(t) and t == -1) else t for t in target)
            return TensorV(dims, False, (Step(node, label, (), dims, True, False, "reshape"),))
        if x.open:
            dims = tuple(None if (is_int(t) and t == -1) else t for t in target)
            return TensorV(dims, False, x.steps + (Step(node, label, x.dims, dims, True, False, "reshape"),), dtype=x.dtype)
        run = self.run
        batch_value = run.applier.batch_value if run is not None else None
        dims, failure = ops.view(x.dims, target, batch_value)
        flat_from = None
        if x.batched and len(x.dims) > 2 and len(dims) == 2 and dims[0] is BATCH and dims[1] == ops.prod_dim(x.dims[1:]):
            flat_from = x.dims[1:]
        step = Step(node, label, x.dims, dims, kind="reshape")
        out = x.with_dims(dims, step=step, flat_from=flat_from)
        if failure is not None and run is not None and frame.mode == "forward":
            info = dict(failure.info)
            info["per_sample"] = x.dims[1:] if x.batched else x.dims
            problem = self.record(failure.kind, info, node, node, None, label, x, op_text=label)
            last_node = nodes[-1] if nodes and len(nodes) == len(target) else None
            last = target[-1]
            if is_int(last) and last > 0 and last_node is not None and failure.kind in ("view-size", "view-batch") and -1 in [t for t in target if is_int(t)]:
                problem.info["size_node"] = last_node
                out.view_link = ViewLink(problem, last)
        return out

    # ------------------------------------------------------------ functional
    def functional(self, name: str, args: list, kwargs: dict, node: cst.Call, frame: Frame) -> Any:
        x = args[0][0] if args else kwargs.get("input", (UNKNOWN,))[0]
        if name in _ELEMENTWISE_FUNCS:
            if isinstance(x, TensorV):
                step = Step(node, name, x.dims, x.dims, x.open, x.open, "elementwise")
                out = x.with_dims(x.dims, step=step, open=x.open, flat_from=x.flat_from, keep_link=True)
                return out
            return UNKNOWN
        pool = None
        for prefix, kind, sig in (
            ("max_pool", "MaxPool", ("kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices")),
            ("avg_pool", "AvgPool", ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override")),
            ("adaptive_avg_pool", "AdaptiveAvgPool", ("output_size",)),
            ("adaptive_max_pool", "AdaptiveMaxPool", ("output_size", "return_indices")),
        ):
            if name.startswith(prefix) and name[len(prefix):] in ("1d", "2d", "3d"):
                pool = (kind + name[len(prefix):], sig)
        if pool is None:
            return UNKNOWN
        kind, sig = pool
        rest = args[1:]
        if len(rest) > len(sig) or any(k not in sig and k != "input" for k in kwargs):
            return UNKNOWN
        params = {k: v[0] for k, v in zip(sig, rest)}
        params.update({k: v[0] for k, v in kwargs.items() if k != "input"})
        if params.get("return_indices", False) is not False:
            return UNKNOWN
        layer = LayerV(kind, "torch.nn.functional." + name, None, params)
        label = "F." + name if isinstance(node.func, cst.Attribute) else name
        return self.apply_layer(layer, x, node, frame, label, node)

    # ------------------------------------------------------------- applying
    def apply_module(self, m: Any, args: list, kwargs: dict, node: cst.Call, frame: Frame, label: str,
                     step_node: cst.CSTNode) -> Any:
        if isinstance(m, ModuleV):
            if not m.complete:
                raise Stop(node, "module whose __init__ could not be followed")
            fwd = m.cls.methods.get("forward")
            if fwd is None:
                raise Stop(node, "module without forward")
            return self.call_function(fwd, [(m, None)] + args, kwargs, "forward", node, self_value=m,
                                      prefix=label + "." if label else "")
        if len(args) != 1 or kwargs:
            if isinstance(m, LayerV) and m.kind in ("LSTM", "GRU", "RNN") and len(args) == 2 and not kwargs:
                pass
            else:
                raise Stop(node, "layer called with several arguments")
        return self.apply_layer(m, args[0][0], node, frame, label, step_node)

    def apply_layer(self, layer: LayerV, x: Any, node: cst.Call, frame: Frame, label: str, step_node: cst.CSTNode) -> Any:
        run = self.run
        if run is not None:
            run.calls[id(layer)] = run.calls.get(id(layer), 0) + 1
            if run.first_layer is None and layer.kind not in ("Sequential", "ModuleList"):
                run.first_layer = layer
        if layer.kind == "Sequential":
            if getattr(layer, "poisoned", False) or layer.children is None:
                raise Stop(node, "Sequential changed in a way that cannot be followed")
            v = x
            for i, child in enumerate(layer.children):
                name = layer.child_names[i] if layer.child_names else None
                lbl = f"{label}.{name}" if name and not name.isdigit() else f"{label}[{i}]"
                cnode = getattr(child, "node", None) or step_node
                if isinstance(child, (LayerV, ModuleV)):
                    v = self.apply_module(child, [(v, None)], {}, node, frame, lbl, cnode)
                else:
                    raise Stop(node, "unknown module in Sequential")
            return v
        if layer.kind in ("ModuleList", "unknown") or run is None:
            if layer.kind == "unknown" and layer.qualname.rsplit(".", 1)[-1].startswith("Lazy"):
                return UNKNOWN
            return UNKNOWN
        if x is UNKNOWN:
            x = open_tensor()
        if not isinstance(x, TensorV):
            return UNKNOWN
        dims, open_, failure = run.applier.apply(layer, x.dims, x.open)
        # A size that comes from a view already reported is that view's problem.
        if failure is not None and x.view_link is None:
            self.record(failure.kind, failure.info, layer.node or node, node, layer, label, x)
        elem = layer.kind in L.ELEMENTWISE
        if dims is UNKNOWN:
            out: Any = open_tensor(x.steps)
            after = None
        else:
            kind = "elementwise" if elem or layer.kind.startswith("BatchNorm") else ("reshape" if layer.kind == "Flatten" else "layer")
            step = Step(step_node, label, x.dims, dims, x.open, open_, kind, layer.kind)
            keep = elem and dims == x.dims
            flat_from = x.flat_from if keep else None
            if layer.kind == "Flatten" and x.batched and len(x.dims) > 2 and len(dims) == 2:
                flat_from = x.dims[1:]
            out = x.with_dims(dims, step=step, open=open_, flat_from=flat_from, keep_link=keep)
            after = out
        if layer.kind == "Linear" and x.view_link is not None:
            in_node = layer.arg_nodes.get("in_features")
            link = x.view_link
            if in_node is not None and layer.params.get("in_features") == link.size:
                link.problem.linked.append((layer, in_node))
        if layer.kind in ("LSTM", "GRU", "RNN"):
            if after is None or x.open:
                return (out, UNKNOWN)
            h = L.rnn_hidden_dims(layer, x.dims)
            hn = TensorV(h) if h is not None else UNKNOWN
            if layer.kind == "LSTM":
                return (out, (hn, hn))
            return (out, hn)
        return out

    def record(self, kind: str, info: dict, node: cst.CSTNode, call: cst.CSTNode | None, layer: LayerV | None,
               label: str, x: TensorV, op_text: str = "") -> Problem:
        run = self.run
        assert run is not None
        p = Problem(kind, dict(info), node, call, layer, label, x, op_text, run.model, run.evidence)
        run.problems.append(p)
        return p

    # ------------------------------------------------------------ statements
    def exec_suite(self, suite: cst.BaseSuite, frame: Frame) -> None:
        if isinstance(suite, cst.SimpleStatementSuite):
            for small in suite.body:
                self.exec_small(small, frame)
            return
        for stmt in suite.body:  # type: ignore[attr-defined]
            self.exec_stmt(stmt, frame)

    def exec_stmt(self, stmt: cst.CSTNode, frame: Frame) -> None:
        self.tick()
        if isinstance(stmt, cst.SimpleStatementLine):
            for small in stmt.body:
                self.exec_small(small, frame)
            return
        if isinstance(stmt, cst.If):
            self.exec_if(stmt, frame)
            return
        if isinstance(stmt, cst.For):
            self.exec_for(stmt, frame)
            return
        if isinstance(stmt, cst.With):
            if stmt.asynchronous is not None:
                self.unknown_flow(stmt, frame)
                return
            for item in stmt.items:
                self.eval(item.item, frame)
                if item.asname is not None:
                    self.assign(item.asname.name, UNKNOWN, frame)
            self.exec_suite(stmt.body, frame)
            return
        if isinstance(stmt, cst.FunctionDef):
            info = self.c.func_info(stmt)
            frame.env[stmt.name.value] = info if info is not None else UNKNOWN
            return
        if isinstance(stmt, cst.ClassDef):
            info = self.c.class_info(stmt)
            frame.env[stmt.name.value] = info if info is not None else UNKNOWN
            return
        self.unknown_flow(stmt, frame)

    def exec_if(self, stmt: cst.If, frame: Frame) -> None:
        t = truth(self.eval(stmt.test, frame))
        if t is None:
            self.unknown_flow(stmt, frame)
        elif t:
            self.exec_suite(stmt.body, frame)
        elif isinstance(stmt.orelse, cst.If):
            self.exec_if(stmt.orelse, frame)
        elif isinstance(stmt.orelse, cst.Else):
            self.exec_suite(stmt.orelse.body, frame)

    def exec_for(self, stmt: cst.For, frame: Frame) -> None:
        if stmt.asynchronous is not None:
            self.unknown_flow(stmt, frame)
            return
        items = self.items_of(self.eval(stmt.iter, frame))
        if items is None or len(items) > MAX_ITER:
            self.unknown_flow(stmt, frame)
            return
        try:
            for item in items:
                self.assign(stmt.target, item, frame)
                try:
                    self.exec_suite(stmt.body, frame)
                except _Continue:
                    continue
                except _Break:
                    break
            else:
                if stmt.orelse is not None:
                    self.exec_suite(stmt.orelse.body, frame)
        except _LoopUnknown:
            self.unknown_flow(stmt, frame)

    def exec_small(self, small: cst.BaseSmallStatement, frame: Frame) -> None:
        if isinstance(small, cst.Assign):
            value = self.eval(small.value, frame)
            for t in small.targets:
                self.assign(t.target, value, frame)
        elif isinstance(small, cst.AnnAssign):
            if small.value is not None:
                self.assign(small.target, self.eval(small.value, frame), frame)
        elif isinstance(small, cst.AugAssign):
            cur = self.eval(small.target, frame)
            rhs = self.eval(small.value, frame)
            op = type(small.operator).__name__.replace("Assign", "")
            if isinstance(cur, ListV) and op == "Add":
                items = self.items_of(rhs)
                if items is None or getattr(cur, "poisoned", False):
                    cur.poisoned = True  # type: ignore[attr-defined]
                    self.assign(small.target, UNKNOWN, frame)
                else:
                    cur.items.extend(items)
                return
            self.assign(small.target, self.binop(op, cur, rhs), frame)
        elif isinstance(small, cst.Expr):
            self.eval(small.value, frame)
        elif isinstance(small, cst.Return):
            raise _Return(None if small.value is None else self.eval(small.value, frame))
        elif isinstance(small, (cst.Pass, cst.Assert, cst.Global, cst.Nonlocal, cst.Import, cst.ImportFrom, cst.Del)):
            return
        elif isinstance(small, cst.Raise):
            if frame.mode == "forward":
                raise Stop(small, "raise")
            raise _Abort()
        elif isinstance(small, cst.Break):
            raise _Break()
        elif isinstance(small, cst.Continue):
            raise _Continue()
        else:
            self.unknown_flow(small, frame)

    def assign(self, target: cst.BaseExpression, value: Any, frame: Frame) -> None:
        if isinstance(target, cst.Name):
            frame.env[target.value] = value
        elif isinstance(target, cst.Attribute):
            obj = self.eval(target.value, frame)
            if isinstance(obj, ModuleV):
                obj.attrs[target.attr.value] = value
        elif isinstance(target, (cst.Tuple, cst.List)):
            binds: dict[str, Any] = {}
            items = self.items_of(value) if not isinstance(value, str) else None
            starred = any(isinstance(el, cst.StarredElement) for el in target.elements)
            if items is None or starred or len(items) != len(target.elements):
                for el in target.elements:
                    self.assign(el.value, UNKNOWN, frame)
                return
            for el, item in zip(target.elements, items):
                self.assign(el.value, item, frame)
            del binds
        elif isinstance(target, cst.Subscript):
            obj = self.eval(target.value, frame)
            if isinstance(obj, (ListV, LayerV)):
                obj.poisoned = True  # type: ignore[attr-defined]
            elif isinstance(obj, DictV):
                if len(target.slice) == 1 and isinstance(target.slice[0].slice, cst.Index):
                    k = self.eval(target.slice[0].slice.value, frame)
                    if concrete(k):
                        obj.items[k] = value
                        return
                obj.items.clear()
                obj.items[object()] = UNKNOWN
        elif isinstance(target, cst.StarredElement):
            self.assign(target.value, UNKNOWN, frame)

    def unknown_flow(self, stmt: cst.CSTNode, frame: Frame) -> None:
        if frame.mode == "forward":
            raise Stop(stmt, "control flow that depends on the data")
        # Everything the statement could assign or mutate becomes unknown.
        stack: list[cst.CSTNode] = [stmt]
        loop_escape = False
        while stack:
            n = stack.pop()
            if isinstance(n, (cst.FunctionDef, cst.ClassDef, cst.Lambda)):
                if isinstance(n, (cst.FunctionDef, cst.ClassDef)):
                    frame.env[n.name.value] = UNKNOWN
                continue
            if isinstance(n, (cst.Break, cst.Continue)) and not isinstance(stmt, (cst.For, cst.While)):
                loop_escape = True
            if isinstance(n, cst.Return):
                frame.tainted = True
            if isinstance(n, (cst.AssignTarget,)):
                self._havoc_target(n.target, frame)
            elif isinstance(n, (cst.AnnAssign, cst.AugAssign)):
                self._havoc_target(n.target, frame)
            elif isinstance(n, (cst.For, cst.CompFor)):
                self._havoc_target(n.target, frame)
            elif isinstance(n, cst.AsName):
                self._havoc_target(n.name, frame)  # type: ignore[arg-type]
            elif isinstance(n, cst.NamedExpr):
                self._havoc_target(n.target, frame)
            elif isinstance(n, cst.Call):
                f = n.func
                if isinstance(f, cst.Attribute):
                    self._havoc_target(f.value, frame, mutate=True)
                elif isinstance(f, cst.Name) and f.value == "setattr":
                    if isinstance(frame.self_value, ModuleV):
                        frame.self_value.attrs.clear()
                        frame.self_value.complete = False
            stack.extend(_children(n))
        if loop_escape:
            raise _LoopUnknown()

    def _havoc_target(self, target: cst.BaseExpression, frame: Frame, mutate: bool = False) -> None:
        if isinstance(target, cst.Name):
            if mutate:
                v = frame.env.get(target.value)
                if isinstance(v, (ListV, LayerV, DictV)):
                    v.poisoned = True  # type: ignore[attr-defined]
                    if isinstance(v, DictV):
                        v.items = {object(): UNKNOWN}
                if isinstance(v, ModuleV):
                    return
                if v is None or not isinstance(v, (QualV, BuiltinV)):
                    if target.value in frame.env and not isinstance(frame.env[target.value], (QualV, ModuleV)):
                        frame.env[target.value] = UNKNOWN
                return
            frame.env[target.value] = UNKNOWN
        elif isinstance(target, cst.Attribute):
            obj = self.eval(target.value, frame) if not mutate or isinstance(target.value, cst.Name) else UNKNOWN
            if isinstance(obj, ModuleV):
                cur = obj.attrs.get(target.attr.value)
                if mutate and isinstance(cur, (ListV, LayerV)):
                    cur.poisoned = True  # type: ignore[attr-defined]
                elif not mutate:
                    obj.attrs[target.attr.value] = UNKNOWN
        elif isinstance(target, (cst.Tuple, cst.List)):
            for el in target.elements:
                self._havoc_target(el.value, frame)
        elif isinstance(target, cst.Subscript):
            self._havoc_target(target.value, frame, mutate=True)
        elif isinstance(target, cst.StarredElement):
            self._havoc_target(target.value, frame)


__all__ = ["BudgetExceeded", "Frame", "Interpreter", "Problem", "Run", "Stop", "join", "same", "truth"]
