"""The program model: one abstract interpretation of a file that every rule asks.

See :mod:`torchlint.analysis` for the query API. The interpreter walks the
statements of the module, then of every function and method, in order:

- values (:mod:`torchlint.analysis.values`) flow through assignments, tuple and
  star unpacking, ``with ... as``, ``for`` targets, ``if``/``else``/``try``/
  ``match`` joins and loops (a loop body runs twice: the second pass starts from
  the join of the entry state and the first pass's exit);
- ``self.<attr>`` is the join of every assignment to it in the methods of the
  class (and of its base classes in the file);
- a function or method of the file gets, for each parameter, the join of the
  arguments of every call site seen (nothing seen: unknown); its return value
  is computed per call with the actual arguments, to a bounded depth;
  ``model(x)`` on a module of the file passes ``x`` to its ``forward``;
  ``functools.partial`` binds arguments;
- a name read inside a function that is not local to it has the join of every
  value bound to it in the enclosing scopes (a function runs after the module
  code has bound its globals, in an order the file does not say).

Everything is computed twice (the first pass settles parameter joins and
attribute tables; the second records the facts rules ask about), once per
file, and only when a rule asks.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import libcst as cst

from torchlint.walk import children as _children

from torchlint.analysis.training import (
    DERIVING_METHODS,
    is_dtype_expr,
    is_loss_function_qualname,
    is_scheduler_qualname,
    is_torch_optimizer_qualname,
    last_part,
    literal_string,
    looks_like_loss_name,
    looks_like_optimizer_name,
)
from torchlint.analysis.values import (
    CPU,
    UNKNOWN,
    Batch,
    ClassV,
    DatasetV,
    Def,
    Defs,
    DeviceV,
    FunctionV,
    InstanceV,
    IteratorV,
    LoaderV,
    LossFnV,
    ModuleV,
    OptimizerV,
    ParamsV,
    Placement,
    ScalerV,
    SchedulerV,
    Shape,
    TensorV,
    TupleV,
    join,
)
from torchlint.analysis.tables import ClassInfo, FileTables, FuncInfo, file_tables
from torchlint.names import UNKNOWN_MODULE, dotted_name

DATALOADERS = frozenset({"torch.utils.data.DataLoader", "torch.utils.data.dataloader.DataLoader"})
PARALLEL = frozenset(
    {
        "torch.nn.DataParallel",
        "torch.nn.parallel.DataParallel",
        "torch.nn.parallel.data_parallel.DataParallel",
        "torch.nn.parallel.DistributedDataParallel",
        "torch.nn.parallel.distributed.DistributedDataParallel",
    }
)
_TRANSPARENT = frozenset({"torch.compile", "torch.jit.script"})
# nn.Module methods that return the module itself.
_MODULE_SELF_METHODS = frozenset({"train", "eval", "float", "half", "double", "bfloat16", "requires_grad_", "share_memory", "type"})
_TENSOR_FACTORIES = frozenset(
    {
        "tensor", "randn", "rand", "zeros", "ones", "empty", "full", "arange", "linspace", "randint", "randperm",
        "eye", "as_tensor", "from_numpy", "zeros_like", "ones_like", "randn_like", "rand_like", "stack", "cat",
    }
)
_GRAD_CONTEXTS = {
    "torch.no_grad": "no_grad",
    "torch.inference_mode": "inference_mode",
    "torch.enable_grad": "enable_grad",
    "torch.set_grad_enabled": "set_grad_enabled",  # on or off, the code does not say statically
    "torch.autograd.grad_mode.no_grad": "no_grad",
    "torch.autograd.grad_mode.inference_mode": "inference_mode",
}
_BUILTIN_ITERATORS = frozenset({"builtins.map", "builtins.zip", "builtins.filter", "builtins.enumerate", "builtins.reversed"})
_ITERTOOLS = frozenset(
    {
        "accumulate", "batched", "chain", "chain.from_iterable", "combinations", "combinations_with_replacement",
        "compress", "count", "cycle", "dropwhile", "filterfalse", "groupby", "islice", "pairwise",
        "permutations", "product", "repeat", "starmap", "takewhile", "zip_longest",
    }
)  # fmt: skip
# The activations TL103 follows: what a call applies last.
ACTIVATIONS = {
    "torch.softmax": "softmax", "torch.nn.functional.softmax": "softmax", "torch.special.softmax": "softmax",
    "torch.log_softmax": "log_softmax", "torch.nn.functional.log_softmax": "log_softmax",
    "torch.special.log_softmax": "log_softmax", "torch.sigmoid": "sigmoid", "torch.nn.functional.sigmoid": "sigmoid",
    "torch.special.expit": "sigmoid",
}  # fmt: skip
ACTIVATION_MODULES = {"Softmax": "softmax", "LogSoftmax": "log_softmax", "Sigmoid": "sigmoid"}
_ACTIVATION_METHODS = frozenset({"softmax", "log_softmax", "sigmoid"})
# Tensor methods that keep what the values are (probabilities stay probabilities).
_SHAPE_METHODS = frozenset(
    {"view", "reshape", "squeeze", "unsqueeze", "flatten", "float", "double", "half", "contiguous", "permute",
     "transpose", "view_as", "reshape_as", "squeeze_", "unsqueeze_", "t"}
)  # fmt: skip
# torch.nn classes that behave differently in train and eval mode, and those that do not
# (containers are looked into; other classes are unknown).
_MODE_DEPENDENT = frozenset(
    {"Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout", "FeatureAlphaDropout", "BatchNorm1d",
     "BatchNorm2d", "BatchNorm3d", "SyncBatchNorm", "LazyBatchNorm1d", "LazyBatchNorm2d", "LazyBatchNorm3d", "RReLU",
     "Transformer", "TransformerEncoder", "TransformerDecoder", "TransformerEncoderLayer", "TransformerDecoderLayer"}
)  # fmt: skip
_MODE_INDEPENDENT = frozenset(
    {"Linear", "Bilinear", "LazyLinear", "Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d",
     "ConvTranspose3d", "LazyConv1d", "LazyConv2d", "LazyConv3d", "ReLU", "ReLU6", "LeakyReLU", "PReLU", "ELU", "SELU",
     "CELU", "GELU", "SiLU", "Mish", "Tanh", "Sigmoid", "Hardtanh", "Hardsigmoid", "Hardswish", "Softplus", "Softsign",
     "Tanhshrink", "Threshold", "GLU", "LogSigmoid", "Softmax", "LogSoftmax", "Softmin", "Softmax2d", "MaxPool1d",
     "MaxPool2d", "MaxPool3d", "AvgPool1d", "AvgPool2d", "AvgPool3d", "AdaptiveAvgPool1d", "AdaptiveAvgPool2d",
     "AdaptiveAvgPool3d", "AdaptiveMaxPool1d", "AdaptiveMaxPool2d", "AdaptiveMaxPool3d", "LPPool1d", "LPPool2d",
     "Flatten", "Unflatten", "Identity", "Embedding", "EmbeddingBag", "LayerNorm", "GroupNorm", "RMSNorm",
     "LocalResponseNorm", "Upsample", "UpsamplingNearest2d", "UpsamplingBilinear2d", "PixelShuffle", "PixelUnshuffle",
     "ZeroPad1d", "ZeroPad2d", "ZeroPad3d", "ConstantPad1d", "ConstantPad2d", "ConstantPad3d", "ReflectionPad1d",
     "ReflectionPad2d", "ReflectionPad3d", "ReplicationPad1d", "ReplicationPad2d", "ReplicationPad3d",
     "CosineSimilarity", "PairwiseDistance", "ChannelShuffle", "Fold", "Unfold", "Parameter"}
)  # fmt: skip
# Depend on the mode only when given a nonzero dropout (or running statistics).
_MODE_BY_KEYWORD = {"RNN": "dropout", "LSTM": "dropout", "GRU": "dropout", "MultiheadAttention": "dropout",
                    "InstanceNorm1d": "track_running_stats", "InstanceNorm2d": "track_running_stats",
                    "InstanceNorm3d": "track_running_stats"}  # fmt: skip
_CONTAINERS = frozenset({"Sequential", "ModuleList", "ModuleDict"})
_MODE_FUNCTIONS = frozenset(
    {"dropout", "dropout1d", "dropout2d", "dropout3d", "alpha_dropout", "feature_alpha_dropout", "batch_norm", "rrelu"}
)
_LIGHTNING_MODULES = frozenset({"pytorch_lightning.LightningModule", "lightning.LightningModule", "lightning.pytorch.LightningModule"})
_MAX_DEPTH = 2  # nested same-file calls followed for a return value
_MAX_RUNS = 3  # times one body is interpreted while the facts it read settle
_RETURN_BUDGET = 400  # callee bodies run for a return value, per file
_LOOP = (cst.For, cst.While)
# The environment holds, next to each name's value, the definitions that reach it under this key.
_DEF = "\0"
_OPAQUE = Defs(frozenset({Def("other")}))


@dataclass
class CallFact:
    """One call as the model saw it. ``func``/``receiver``/``args`` are abstract values
    (``receiver`` for ``x.m(...)`` calls, else None; ``args`` in source order);
    ``loops``: the enclosing ``for``/``while`` of the same function, outermost first."""

    node: cst.Call
    func: object
    receiver: object
    args: tuple[object, ...]
    function: cst.FunctionDef | None
    loops: tuple[cst.CSTNode, ...]
    grad_mode: str | None
    discarded: bool


@dataclass
class UpdateFact:
    """An augmented assignment (``total += loss``) as the model saw it: ``target`` the value
    before, ``value`` the right-hand side's; context as in :class:`CallFact`."""

    node: cst.AugAssign
    target: object
    value: object
    function: cst.FunctionDef | None
    loops: tuple[cst.CSTNode, ...]
    grad_mode: str | None


@dataclass
class Region:
    """A loop or a function body: the calls that run in it and its ``.grad`` clearing statements."""

    node: cst.CSTNode
    function: cst.FunctionDef | None
    calls: list[CallFact] = field(default_factory=list)
    grad_clears: list[cst.CSTNode] = field(default_factory=list)
    over: object = None  # a for loop: what it binds each iteration (a TensorV from a loader: a loop over batches)


@dataclass
class _Frame:
    info: FuncInfo | None  # None: the module
    env: dict[str, object]
    loops: list[cst.CSTNode] = field(default_factory=list)
    grad: list[str] = field(default_factory=list)
    returns: object = None
    depth: int = 0


class ProgramModel:
    """The answers for one file. Build with :func:`program_model` (cached per file)."""

    def __init__(self, module: cst.Module, names: Any, code: Callable[[cst.CSTNode], str],
                 tables: FileTables | None = None) -> None:
        self.module = module
        # What each name of the file is (classes, functions, scopes, calls): one table, shared
        # with the shape analysis.
        self.tables = tables if tables is not None else FileTables(module, names)
        self.names = names
        self.code = code
        self.facts: dict[int, CallFact] = {}
        self._updates: dict[int, UpdateFact] = {}
        self.regions: dict[int, Region] = {}
        self.functions: dict[str, list[cst.FunctionDef]] = {}
        self.classes: dict[str, cst.ClassDef] = {}
        self._infos: dict[int, FuncInfo] = {}
        self._order: list[FuncInfo] = []
        self._module_classes: dict[str, bool] = {}
        self._torch_classes: dict[str, bool] = {}
        self._attrs: dict[str, dict[str, object]] = {}  # class name -> attr -> joined value
        self._params: dict[int, list[object]] = {}  # function -> joined argument per parameter
        self._summary: dict[int, dict[str, object]] = {0: {}}  # scope (0: module) -> name -> joined value
        self._returns: dict[tuple, object] = {}  # (function, arguments, _version) -> its return value
        self._forward_returns: dict[int, object] = {}  # forward methods: the join of what they return
        self._class_modes: dict[str, bool | None] = {}
        self._mode_exits: dict[int, tuple] = {}  # function -> each parameter's train/eval mode at its end
        self._version = 0
        self._budget = _RETURN_BUDGET
        self._stack: list[int] = []
        self._recording = True
        self._clears_memo: dict[int, bool] = {}
        # Who read which shared fact (a parameter join, an attribute table entry, a
        # scope summary): when the fact changes, its readers run again.
        self._readers: dict[tuple, set[int]] = {}
        self._current = 0  # the body being run: 0 the module, else id(FunctionDef)
        self._dirty: list[int] = []
        self._queued: set[int] = set()
        # Provenance: the definitions each recorded name read sees (scope, name, Defs or None:
        # the scope's summary), and every call site of each function of the file.
        self._reads: dict[int, tuple] = {}
        self._sites: dict[int, dict[int, tuple[cst.Call, bool]]] = {}
        self._rebound: set[tuple[int, str]] | None = None
        # Tensor shapes, asked of the shape analysis on first request (TensorV.shape).
        self._shapes: dict[int, Shape | None] = {}
        self._oracle: Any = None
        # Did a body that read a changed fact stay unrun (``_MAX_RUNS``)? Then its facts may not
        # have settled (torchlint/slices.py lints such a file whole).
        self.capped = False
        self._scan()
        for cls in self.classes.values():
            self._is_module_class(cls.name.value, 0)
        self._solve()

    def release_cycles(self) -> None:
        """Forget everything (the facts name the model): the file's tree goes when its lint ends."""
        self.__dict__.clear()

    # ------------------------------------------------------------------ queries
    def fact(self, call: cst.Call) -> CallFact | None:
        """What the model saw at ``call`` (None: code the model never runs, e.g. a lambda body)."""
        return self.facts.get(id(call))

    def calls(self) -> Iterator[CallFact]:
        return iter(self.facts.values())

    def update(self, node: cst.AugAssign) -> UpdateFact | None:
        """What the model saw at ``x += y`` (None: code it never runs)."""
        return self._updates.get(id(node))

    def loop(self, node: cst.CSTNode) -> Region | None:
        return self.regions.get(id(node))

    def function_region(self, func: cst.FunctionDef) -> Region | None:
        return self.regions.get(id(func))

    def is_module_class(self, name: str) -> bool:
        return self._module_classes.get(name, False)

    def definitions(self, name: cst.Name) -> Defs | None:
        """The definitions that may give a name read its value (:class:`Def`: provenance for
        analyses that evaluate it themselves); None: a read the model never ran, or a name the
        file does not bind on the way there (an import, a builtin)."""
        found = self._reads.get(id(name))
        if found is None:
            return None
        scope, text, defs = found
        if defs is None:
            return self._scope_defs(scope, text)
        return _OPAQUE if (scope, text) in self._rebinders() else defs

    def scope_definitions(self, scope: cst.FunctionDef | None, name: str) -> Defs | None:
        """Every definition of ``name`` in a function's body (None: the module's), joined as
        code that runs later sees them (a function reading a global); None when it binds none."""
        return self._scope_defs(0 if scope is None else id(scope), name)

    def call_sites(self, func: cst.FunctionDef) -> list[tuple[cst.Call, bool]] | None:
        """The calls of a function of the file the model followed, each with whether it is a
        plain call (no bound receiver, no ``functools.partial`` values before its arguments)."""
        sites = self._sites.get(id(func))
        return None if sites is None else list(sites.values())

    def shape(self, expr: cst.BaseExpression, function: cst.FunctionDef | None = None) -> Shape | None:
        """The shape of the tensor ``expr`` (code of ``function``, None: the module) evaluates to,
        as the shape analysis computes it: a batch of a DataLoader over a known dataset, a tensor
        factory with known sizes, what a model of the file gives for such an input; None where it
        cannot know. The shape analysis is set up on the first request and each expression's
        answer remembered: rules that never ask pay nothing. ``TensorV.shape`` asks this."""
        key = id(expr)
        if key in self._shapes:
            return self._shapes[key]
        if self._oracle is None:
            from torchlint.shapes.oracle import ShapeOracle  # the shape analysis imports this module

            self._oracle = ShapeOracle(self)
        found = self._shapes[key] = self._oracle.shape(expr, function)
        return found

    def _scope_defs(self, scope: int, name: str) -> Defs | None:
        summary = self._summary.get(scope)
        defs = None if summary is None else summary.get(_DEF + name)
        if defs is not None and (scope, name) in self._rebinders():
            return _OPAQUE
        return defs

    def _rebinders(self) -> set[tuple[int, str]]:
        """(scope, name) that an import binds too, or a ``global``/``nonlocal`` statement elsewhere
        (the definitions the model follows are not all of them)."""
        if self._rebound is None:
            out: set[tuple[int, str]] = set()
            nonlocal_names: set[str] = set()
            for key, body in [(0, self.module.body), *((k, _body(i.node.body)) for k, i in self._infos.items())]:
                for stmt in _statements_of(body):
                    if isinstance(stmt, (cst.Import, cst.ImportFrom)) and not isinstance(stmt.names, cst.ImportStar):
                        for alias in stmt.names:
                            target = alias.asname.name if alias.asname is not None else alias.name
                            d = dotted_name(target)  # type: ignore[arg-type]
                            if d:
                                out.add((key, d.split(".")[0]))
                    elif isinstance(stmt, cst.Global):
                        out.update((0, n.name.value) for n in stmt.names)
                    elif isinstance(stmt, cst.Nonlocal):
                        nonlocal_names.update(n.name.value for n in stmt.names)
            out.update((k, n) for k in self._infos for n in nonlocal_names)
            self._rebound = out
        return self._rebound

    def is_torch_module_class(self, name: str) -> bool:
        """A class of this file whose bases resolve, through the imports and the file's own
        classes, to a ``torch.nn`` module class (or Lightning's): stricter than
        :meth:`is_module_class`, which takes any base named ``*Module`` (flax, Keras...)."""
        return self._torch_module(name, 0)

    def is_torch_module(self, value: object) -> bool:
        """A module value whose class is known to be a torch one (``nn.Linear(...)``, an
        instance or ``self`` of a torch module class of this file): never a guess from a name."""
        if not isinstance(value, ModuleV) or value.cls is None:
            return False
        if value.cls in self.classes:
            return self.is_torch_module_class(value.cls)
        return value.cls.startswith("torch.")

    def _torch_module(self, name: str, depth: int) -> bool:
        if name in self._torch_classes:
            return self._torch_classes[name]
        self._torch_classes[name] = False  # a cycle of bases is no module
        result = False
        cls = self.classes.get(name)
        if cls is not None and depth < 8:
            for base in cls.bases:
                d = dotted_name(base.value) or ""
                if d in self.classes and d != name:
                    result = self._torch_module(d, depth + 1)
                else:
                    qual = self._qualname(base.value) or ""
                    result = (qual.startswith("torch.nn.") and last_part(qual)[:1].isupper()) or qual in _LIGHTNING_MODULES
                if result:
                    break
        self._torch_classes[name] = result
        return result

    def module_output(self, value: object) -> TensorV | None:
        """What calling a module gives when the file shows its last step: a ``TensorV`` with
        ``act`` for ``nn.Softmax``/``LogSoftmax``/``Sigmoid``, an ``nn.Sequential`` ending in one,
        or a class of the file whose every ``return`` in ``forward`` is such an activation; else None."""
        if not isinstance(value, ModuleV):
            return None
        if value.output is not None:
            return TensorV(act=value.output)
        if value.cls in self.classes:
            forward = self.method(value.cls, "forward")
            if forward is None:
                return None
            self._read(("r", id(forward)))
            returned = self._forward_returns.get(id(forward))
            if isinstance(returned, TensorV) and returned.act is not None:
                return returned
        return None

    def mode_dependent(self, value: object) -> bool | None:
        """Does this module behave differently in train and eval mode? True: it has dropout or
        batch norm (``nn.Dropout*``, ``nn.BatchNorm*``, ``F.dropout``, a ``self.training`` test...);
        False: every layer the file shows is known not to; None: the file does not say."""
        if not isinstance(value, ModuleV):
            return None
        if value.mode_dependent is not None:
            return value.mode_dependent
        if value.cls in self.classes:
            return self.class_mode_dependent(value.cls)
        return None

    def class_mode_dependent(self, name: str) -> bool | None:
        """:meth:`mode_dependent` for a module class of this file (and its bases in the file)."""
        if name in self._class_modes:
            return self._class_modes[name]
        self._class_modes[name] = None  # a cycle: unknown
        result: bool | None = False
        seen: set[int] = set()
        node: cst.ClassDef | None = self.classes.get(name)
        while node is not None:
            found = self._scan_modes(node, seen, 0)
            if found is True:
                result = True
                break
            if found is None:
                result = None
            bases = [dotted_name(b.value) or "" for b in node.bases]
            local = [b for b in bases if b in self.classes and b != node.name.value]
            if not local:
                if not any(
                    (q := self._qualname(b.value) or "") in ("torch.nn.Module", "torch.nn.modules.module.Module") for b in node.bases
                ):
                    result = None if result is False else result  # a base class the file does not show
                break
            node = self.classes[local[0]]
        self._class_modes[name] = result
        return result

    def _scan_modes(self, root: cst.CSTNode, seen: set[int], depth: int) -> bool | None:
        """True: a mode-dependent layer or ``self.training``; None: a submodule of unknown kind."""
        if id(root) in seen or depth > 4:
            return False
        seen.add(id(root))
        unknown = False
        stack: list[cst.CSTNode] = [root]
        while stack:
            cur = stack.pop()
            stack.extend(cur.children)
            if isinstance(cur, cst.Attribute) and cur.attr.value == "training" and isinstance(cur.value, cst.Name) and cur.value.value == "self":
                return True
            if isinstance(cur, cst.Assign) and isinstance(cur.value, cst.Call):
                if any(isinstance(t.target, cst.Attribute) for t in cur.targets) and self._builds_unknown(cur.value):
                    unknown = True
            if not isinstance(cur, cst.Call):
                continue
            qual = self._qualname(cur.func) or ""
            head, _, last = qual.rpartition(".")
            if qual.startswith("torch.nn.functional.") and last in _MODE_FUNCTIONS:
                return True
            if head.startswith("torch.nn") and last[:1].isupper():
                mode = _torch_class_mode(last, cur)
                if mode:
                    return True
                if mode is None and last not in _CONTAINERS:
                    unknown = True
            elif qual.startswith("torchvision.models.") and last[:1].islower():
                return True  # every torchvision classification model has batch norm or dropout
            elif isinstance(cur.func, cst.Name) and cur.func.value in self.classes:
                if self.is_module_class(cur.func.value):
                    inner = self.class_mode_dependent(cur.func.value)
                    if inner:
                        return True
                    unknown = unknown or inner is None
            elif isinstance(cur.func, cst.Name) and cur.func.value in self.functions:
                inner = self._scan_modes(self.functions[cur.func.value][0], seen, depth + 1)
                if inner:
                    return True
                unknown = unknown or inner is None
        return None if unknown else False

    def _builds_unknown(self, call: cst.Call) -> bool:
        """``self.x = Block(...)`` with ``Block`` neither torch's, nor of this file, nor a builtin."""
        func = call.func
        if isinstance(func, cst.Name) and (func.value in self.classes or func.value in self.functions):
            return False
        qual = self._qualname(func)
        if qual is None:
            return isinstance(func, cst.Name) and func.value[:1].isupper()
        root = qual.split(".", 1)[0]
        return root not in SAFE_ROOTS and qual.rpartition(".")[2][:1].isupper()

    def class_attrs(self, cls: str) -> dict[str, object]:
        return self._attrs.get(cls, {})

    def method(self, cls: str, name: str) -> cst.FunctionDef | None:
        """``name`` defined in class ``cls`` of this file or one of its bases in the file."""
        seen: set[str] = set()
        while cls in self.classes and cls not in seen:
            seen.add(cls)
            node = self.classes[cls]
            for stmt in _body(node.body):
                if type(stmt) is cst.FunctionDef and stmt.name.value == name:
                    return stmt
            bases = [b.value for b in node.bases if type(b.value) is cst.Name and b.value.value in self.classes]
            if not bases:
                return None
            cls = bases[0].value  # type: ignore[union-attr]
        return None

    def may_clear_grads(self, fact: CallFact) -> bool:
        """Can this call clear gradients? A call into code of this file: if that code
        does (``zero_grad``, ``.grad = None``, ``del .grad``, or a call that may).
        A call into code the file does not show: only if it can reach a model or an
        optimizer -- given one as an argument or receiver (or ``m.parameters()``, or
        an object of the file holding one), or an inherited method of ``self``.
        Known libraries (``torch``, ``logging``, ``numpy``...) never do."""
        return self._may_clear(fact, set())

    def function_clears(self, func: cst.FunctionDef) -> bool:
        return self._function_clears(func, set())

    # ------------------------------------------------------------------ effects
    def _may_clear(self, fact: CallFact, visiting: set[int]) -> bool:
        func, node = fact.func, fact.node
        if isinstance(func, FunctionV):
            return self._function_clears(func.node, visiting)
        if isinstance(func, ClassV):
            init = self.method(func.node.name.value, "__init__")
            return init is not None and self._function_clears(init, visiting)
        if isinstance(func, (ModuleV, LossFnV)):
            return False  # model(x), criterion(out, y): a forward pass
        callee = node.func
        method = callee.attr.value if isinstance(callee, cst.Attribute) else None
        qual = self._qualname(callee)
        if qual is not None and qual.split(".", 1)[0] in SAFE_ROOTS:
            return False
        if qual is not None and qual.startswith(UNKNOWN_MODULE + "."):
            return True  # a document's cell that did not parse: its code sees the globals, so it may
        if method is not None and isinstance(callee, cst.Attribute):
            root = dotted_name(callee.value)
            owner = fact.receiver
            if isinstance(owner, (InstanceV, ModuleV)) and method in self._attrs.get(owner.cls or "", {}):
                owner = None  # a callable stored on the object: called without it
            elif root in ("self", "cls"):
                # An inherited method we cannot see (unittest assertions aside).
                return not method.startswith("assert")
            if isinstance(owner, (ModuleV, OptimizerV, SchedulerV, ScalerV, TensorV, LoaderV)):
                owner = None  # torch's own methods: only zero_grad clears, and rules see that one
            if method in _SAFE_CONSUMERS:
                return False
        reached = [owner, *fact.args] if method is not None else list(fact.args)
        return any(self._holds_training_state(v, node) for v in reached)

    def _holds_training_state(self, value: object, node: cst.Call) -> bool:
        if isinstance(value, (ModuleV, OptimizerV, ParamsV)):
            return True
        if isinstance(value, TupleV):
            return any(self._holds_training_state(v, node) for v in value.items)
        if isinstance(value, InstanceV):
            return any(isinstance(v, (ModuleV, OptimizerV, InstanceV)) for v in self._attrs.get(value.cls, {}).values())
        return False

    def _function_clears(self, func: cst.FunctionDef, visiting: set[int]) -> bool:
        key = id(func)
        if key in self._clears_memo:
            return self._clears_memo[key]
        if key in visiting:
            return False
        visiting.add(key)
        region = self.regions.get(key)
        result = False
        if region is not None:
            result = bool(region.grad_clears) or any(
                _is_zero_grad(f.node) or self._may_clear(f, visiting) for f in region.calls
            )
        visiting.discard(key)
        self._clears_memo[key] = result
        return result

    # ------------------------------------------------------------------ scan
    def _scan(self) -> None:
        for info in self.tables.functions:
            self._infos[id(info.node)] = info
            self.functions.setdefault(info.name, []).append(info.node)
            self._summary[id(info.node)] = {}
        for cls in self.tables.classes:
            self.classes.setdefault(cls.name, cls.node)
        # __init__ first, so that other methods see the attributes it sets.
        self._order = sorted(self._infos.values(), key=lambda i: (i.owner is not None and i.name != "__init__"))

    def class_defs(self, name: str) -> list[ClassInfo]:
        """Every class statement of the file with this name, in source order (``classes``
        keeps the first: the one the model follows)."""
        return self.tables.classes_named(name)

    def _is_module_class(self, name: str, depth: int) -> bool:
        if name in self._module_classes:
            return self._module_classes[name]
        result = False
        cls = self.classes.get(name)
        if cls is not None and depth < 8:
            for base in cls.bases:
                d = dotted_name(base.value) or ""
                if d in self.classes and d != name:
                    result = self._is_module_class(d, depth + 1)
                else:
                    result = last_part(d).endswith("Module")
                if result:
                    break
        self._module_classes[name] = result
        return result

    # ------------------------------------------------------------------ running
    def _solve(self) -> None:
        """Run the module, then every function, then whatever read a fact that changed since
        (each body at most ``_MAX_RUNS`` times: joins only grow, so this settles fast)."""
        order = [0, *(id(i.node) for i in self._order)]
        runs: dict[int, int] = {}
        pending = list(reversed(order))
        self._queued = set(order)
        while pending:
            key = pending.pop()
            self._queued.discard(key)
            if runs.get(key, 0) >= _MAX_RUNS:
                continue
            runs[key] = runs.get(key, 0) + 1
            self._current = key
            if key == 0:
                self._run_module()
            else:
                self._run_function(self._infos[key])
            for dirty in self._dirty:
                if dirty not in self._queued and runs.get(dirty, 0) < _MAX_RUNS:
                    self._queued.add(dirty)
                    pending.insert(0, dirty)
                elif runs.get(dirty, 0) >= _MAX_RUNS:
                    self.capped = True
            self._dirty.clear()

    def _read(self, key: tuple) -> None:
        self._readers.setdefault(key, set()).add(self._current)

    def _changed(self, key: tuple) -> None:
        readers = self._readers.get(key)
        if readers:
            self._version += 1  # return values computed from the old fact may be stale
            self._dirty.extend(r for r in readers if r != self._current or key[0] == "p")

    def _run_module(self) -> None:
        frame = _Frame(None, {})
        self._block(self.module.body, frame)

    def _run_function(self, info: FuncInfo) -> None:
        params = self._params.get(id(info.node))
        frame = self._enter(info, None if params is None else list(params), 0)
        for f in (*info.chain, info.node):
            self.names.push_function(f)
        try:
            if self._recording:
                self.regions[id(info.node)] = Region(info.node, info.node)
            self._block(_body(info.node.body), frame)
        finally:
            for _ in (*info.chain, info.node):
                self.names.pop_function()
        exits = tuple(v.training if isinstance(v := frame.env.get(p), ModuleV) else None for p in info.params)
        if self._mode_exits.get(id(info.node)) != exits:
            self._mode_exits[id(info.node)] = exits
            self._changed(("x", id(info.node)))
        if info.cls is not None and info.node.name.value == "forward":
            returned = UNKNOWN if frame.returns is None else frame.returns
            key = id(info.node)
            if key not in self._forward_returns or self._forward_returns[key] != returned:
                self._forward_returns[key] = returned
                self._changed(("r", key))

    def _enter(self, info: FuncInfo, args: list[object] | None, depth: int) -> _Frame:
        if depth == 0:
            self._read(("p", id(info.node)))
        env: dict[str, object] = {}
        for i, name in enumerate(info.params):
            value = args[i] if args is not None and i < len(args) else None
            if i == 0 and info.cls is not None and not info.is_static and value in (None, UNKNOWN):
                cname = info.cls.name.value
                value = ModuleV(cname) if self.is_module_class(cname) else InstanceV(cname)
            env[name] = value if value not in (None, UNKNOWN) else _by_name(name)
            env[_DEF + name] = defs = Defs(frozenset({Def("param", info.node, (), info.node, i, name)}))
            self._summary[id(info.node)].setdefault(_DEF + name, defs)
            # Closures read a parameter through the function's scope summary.
            summary = self._summary[id(info.node)]
            old = summary.get(name)
            if old != (new := join(old, env[name])) or name not in summary:
                summary[name] = new
                self._changed(("s", id(info.node), name))
        p = info.node.params
        for x in p.kwonly_params:
            env[x.name.value] = _by_name(x.name.value)
            env[_DEF + x.name.value] = defs = Defs(frozenset({Def("param", info.node, (), info.node, None, x.name.value)}))
            self._summary[id(info.node)].setdefault(_DEF + x.name.value, defs)
        for x in (p.star_arg, p.star_kwarg):
            if isinstance(x, cst.Param):
                env[x.name.value] = _by_name(x.name.value)
                env[_DEF + x.name.value] = _OPAQUE
        # @torch.no_grad() / @torch.inference_mode() on the def: its whole body runs in that mode.
        grad = [m for d in info.node.decorators if (m := self._grad_context(d.decorator)) is not None]
        return _Frame(info, env, grad=grad, depth=depth)

    def _self_name(self, frame: _Frame) -> str | None:
        info = frame.info
        if info is None or info.cls is None or info.is_static or not info.params:
            return None
        return info.params[0]

    # ------------------------------------------------------------------ statements
    def _block(self, stmts, frame: _Frame) -> None:
        for stmt in stmts:
            self._stmt(stmt, frame)

    def _suite(self, suite, frame: _Frame) -> None:
        if suite is None:
            return
        if isinstance(suite, (cst.Else, cst.Finally)):
            suite = suite.body
        if isinstance(suite, cst.IndentedBlock):
            self._block(suite.body, frame)
        elif isinstance(suite, cst.SimpleStatementSuite):
            for small in suite.body:
                self._small(small, None, frame)

    def _branch(self, suite, frame: _Frame) -> dict[str, object]:
        sub = replace(frame, env=dict(frame.env))
        self._suite(suite, sub)
        frame.returns = sub.returns
        return sub.env

    def _merge(self, frame: _Frame, envs: list[dict[str, object]]) -> None:
        keys = set().union(*envs)
        frame.env = {k: _join_all([e.get(k) for e in envs]) for k in keys}

    def _stmt(self, stmt: cst.CSTNode, frame: _Frame) -> None:
        if isinstance(stmt, cst.SimpleStatementLine):
            for small in stmt.body:
                self._small(small, stmt, frame)
        elif isinstance(stmt, cst.FunctionDef):
            for d in stmt.decorators:
                self._ev(d.decorator, frame)
            self._bind_name(stmt.name.value, FunctionV(stmt), frame)
            self._define_name(stmt.name.value, Def("def", stmt, (), _scope_of(frame)), frame)
        elif isinstance(stmt, cst.ClassDef):
            self._bind_name(stmt.name.value, ClassV(stmt, self.is_module_class(stmt.name.value)), frame)
            self._define_name(stmt.name.value, Def("class", stmt, (), _scope_of(frame)), frame)
        elif isinstance(stmt, cst.If):
            self._ev(stmt.test, frame)
            body = self._branch(stmt.body, frame)
            orelse = stmt.orelse
            if isinstance(orelse, cst.If):
                sub = replace(frame, env=dict(frame.env))
                self._stmt(orelse, sub)
                frame.returns = sub.returns
                other = sub.env
            elif orelse is not None:
                other = self._branch(orelse, frame)
            else:
                other = frame.env
            self._merge(frame, [body, other])
        elif isinstance(stmt, _LOOP):
            self._loop(stmt, frame)
        elif isinstance(stmt, cst.With):
            grads = 0
            for item in stmt.items:
                self._ev(item.item, frame)
                mode = self._grad_context(item.item)
                if mode is not None:
                    frame.grad.append(mode)
                    grads += 1
                if item.asname is not None:
                    # What __enter__ returns is not followed (open(), a context object, ...).
                    self._bind(item.asname.name, UNKNOWN, stmt, frame)
                    self._define(item.asname.name, "other", None, frame)
            self._suite(stmt.body, frame)
            for _ in range(grads):
                frame.grad.pop()
        elif isinstance(stmt, cst.Try):
            start = dict(frame.env)
            self._suite(stmt.body, frame)
            envs = [frame.env]
            for handler in stmt.handlers:
                sub = replace(frame, env=_join_envs(start, frame.env))
                if handler.name is not None:
                    self._bind(handler.name.name, UNKNOWN, stmt, sub)
                    self._define(handler.name.name, "other", None, sub)
                self._suite(handler.body, sub)
                envs.append(sub.env)
            if stmt.orelse is not None:
                self._suite(stmt.orelse, frame)
                envs[0] = frame.env
            self._merge(frame, envs)
            if stmt.finalbody is not None:
                self._suite(stmt.finalbody, frame)
        elif isinstance(stmt, cst.Match):
            self._ev(stmt.subject, frame)
            envs = [frame.env]
            for case in stmt.cases:
                envs.append(self._branch(case.body, frame))
            self._merge(frame, envs)
        else:
            for attr in ("body", "orelse", "finalbody"):
                self._suite(getattr(stmt, attr, None), frame)

    def _loop(self, stmt: cst.For | cst.While, frame: _Frame) -> None:
        recording = self._recording
        if isinstance(stmt, cst.For):
            it = self._ev(stmt.iter, frame)
            element = self._element(stmt.iter, it, frame)
        else:
            self._ev(stmt.test, frame)
            element = None
        if recording:
            self.regions[id(stmt)] = Region(stmt, frame.info.node if frame.info else None, over=element)
        start = dict(frame.env)
        frame.loops.append(stmt)
        if not recording:
            # Inside another loop's first pass (or a return-value run): one pass is enough
            # for the join the outer pass needs, and nesting stays linear.
            self._loop_body(stmt, element, frame)
            frame.loops.pop()
            frame.env = _join_envs(start, frame.env)
            if stmt.orelse is not None:
                self._suite(stmt.orelse, frame)
            return
        # Pass one finds what the body rebinds; pass two starts from the join (the back edge).
        self._recording = False
        first = replace(frame, env=dict(start))
        self._loop_body(stmt, element, first)
        self._recording = recording
        frame.env = _join_envs(start, first.env)
        for name, value in frame.env.items():
            # A mode the back edge brings that the first iteration did not have (eval() late in an epoch).
            a, b = start.get(name), first.env.get(name)
            if (
                isinstance(value, ModuleV) and value.training is None and isinstance(a, ModuleV)
                and isinstance(b, ModuleV) and b.training is not None and a.training != b.training
            ):
                frame.env[name] = replace(value, back=b.training)
        self._loop_body(stmt, element, frame)
        frame.loops.pop()
        frame.env = _join_envs(start, frame.env)
        if stmt.orelse is not None:
            self._suite(stmt.orelse, frame)

    def _loop_body(self, stmt, element, frame: _Frame) -> None:
        if isinstance(stmt, cst.For):
            self._bind(stmt.target, element, stmt, frame)
            self._define(stmt.target, "for", stmt.iter, frame)
        else:
            self._ev(stmt.test, frame)
        self._suite(stmt.body, frame)

    def _small(self, stmt: cst.CSTNode, line: cst.CSTNode | None, frame: _Frame) -> None:
        site = line if line is not None else stmt
        t = type(stmt)  # (exact type tests: libcst's classes are ABCs, and isinstance on them is slow)
        if t is cst.Assign:
            value = self._ev(stmt.value, frame)
            for target in stmt.targets:
                self._bind(target.target, value, site, frame, stmt.value)
                self._define(target.target, "assign", stmt.value, frame)
        elif t is cst.AnnAssign:
            if stmt.value is not None:
                self._bind(stmt.target, self._ev(stmt.value, frame), site, frame, stmt.value)
                self._define(stmt.target, "assign", stmt.value, frame)
        elif t is cst.AugAssign:
            value = self._ev(stmt.value, frame)
            old = self._ev(stmt.target, frame)
            if self._recording:
                where = frame.info.node if frame.info else None
                self._updates[id(stmt)] = UpdateFact(
                    stmt, self._shaped(old, stmt.target, where), self._shaped(value, stmt.value, where), where,
                    tuple(frame.loops), frame.grad[-1] if frame.grad else None,
                )
            new = old if isinstance(old, TensorV) and isinstance(value, TensorV) else UNKNOWN
            self._bind(stmt.target, new, site, frame)
            self._define(stmt.target, "other", None, frame)
        elif t is cst.Expr:
            self._expr_statement(stmt.value, frame)
        elif t is cst.Return:
            if stmt.value is not None:
                frame.returns = join(frame.returns, self._ev(stmt.value, frame))
        elif t is cst.Del:
            if _mentions_grad(stmt.target):
                self._grad_clear(stmt, frame)
            for t in _del_targets(stmt.target):
                self._bind(t, UNKNOWN, site, frame)
                self._define(t, "other", None, frame)
        elif (t is cst.Global or t is cst.Nonlocal or t is cst.Import or t is cst.ImportFrom or t is cst.Pass or t is cst.Break or t is cst.Continue):
            return
        else:
            for child in _children(stmt):
                if isinstance(child, cst.BaseExpression):
                    self._ev(child, frame)

    def _expr_statement(self, expr: cst.BaseExpression, frame: _Frame) -> None:
        if not isinstance(expr, cst.Call):
            self._ev(expr, frame)
            return
        self._ev(expr, frame, discarded=True)
        func = expr.func
        qual = self._qualname(func) or ""
        if not qual.startswith("torch."):
            # A helper called for its effect on a batch (``to_device(batch, device)``) may move
            # a batch structure's tensors in place: where they are is no longer known.
            for arg in expr.args:
                name = dotted_name(arg.value)
                value = None if name is None else frame.env.get(name)
                if isinstance(value, TensorV) and value.origin is not None:
                    self._assign_dotted(name, replace(value, placement=None), frame)  # type: ignore[arg-type]
        if not isinstance(func, cst.Attribute):
            return
        target = dotted_name(func.value)
        if target is None:
            return
        method = func.attr.value
        receiver = self._lookup(target, frame)
        if isinstance(receiver, TensorV):
            if method in ("to", "cuda", "cpu"):
                # Tensor.to is not in place: the tensor stays where it was, but the
                # author believes otherwise (TL402's finding); follow neither.
                self._assign_dotted(target, TensorV(None, None, receiver.grad), frame)
            return
        if method in ("to", "cuda", "cpu"):
            # Modules move in place; an unknown value moved by a statement is taken to be one.
            placement = self._move_placement(expr, frame)
            if placement is None:
                return
            base = receiver if isinstance(receiver, ModuleV) else self._module_of(func.value, frame)
            moved = replace(base, placement=None if placement == CPU else placement)
            self._assign_dotted(target, moved, frame)
        elif method in ("train", "eval") and isinstance(receiver, ModuleV):
            self._assign_dotted(target, replace(receiver, training=_mode_arg(expr), back=None), frame)

    def _grad_clear(self, node: cst.CSTNode, frame: _Frame) -> None:
        if not self._recording:
            return
        for loop in frame.loops:
            self.regions[id(loop)].grad_clears.append(node)
        if frame.info is not None:
            self.regions[id(frame.info.node)].grad_clears.append(node)

    # ------------------------------------------------------------------ binding
    def _bind(self, target, value, site, frame: _Frame, source: cst.BaseExpression | None = None) -> None:
        if isinstance(target, cst.Name):
            if isinstance(value, TensorV) and value.origin is not None:
                value = replace(value, origin=Batch(value.origin.loader, target.value, site))
            self._bind_name(target.value, value, frame)
        elif isinstance(target, (cst.Tuple, cst.List)):
            elements = target.elements
            starred = any(isinstance(e, cst.StarredElement) for e in elements)
            if (
                isinstance(source, (cst.Tuple, cst.List))
                and not starred
                and len(source.elements) == len(elements)
                and not any(isinstance(e, cst.StarredElement) for e in source.elements)
            ):
                values = value.items if isinstance(value, TupleV) else (UNKNOWN,) * len(elements)
                for el, v, s in zip(elements, values, source.elements):
                    self._bind(el.value, v, site, frame, s.value)
                return
            if isinstance(value, TupleV) and not starred and len(value.items) == len(elements):
                for el, v in zip(elements, value.items):
                    self._bind(el.value, v, site, frame)
                return
            for el in elements:
                if isinstance(el, cst.StarredElement):
                    self._bind(el.value, UNKNOWN, site, frame)
                elif isinstance(value, TensorV) and value.origin is not None:
                    self._bind(el.value, TensorV(value.placement, Batch(value.origin.loader), value.grad), site, frame)
                else:
                    self._bind(el.value, UNKNOWN, site, frame)
        elif isinstance(target, cst.StarredElement):
            self._bind(target.value, UNKNOWN, site, frame)
        elif isinstance(target, cst.Attribute):
            if target.attr.value == "grad" or _mentions_grad(target.value):
                self._grad_clear(site, frame)
            self._ev(target.value, frame)
            dotted = dotted_name(target)
            if dotted is not None:
                self._assign_dotted(dotted, value, frame)
        elif isinstance(target, cst.Subscript):
            self._ev(target, frame)

    def _define(self, target, kind: str, node: cst.CSTNode | None, frame: _Frame, path: tuple = ()) -> None:
        """Record where the names of a target get their values (see :class:`Def`)."""
        if isinstance(target, cst.Name):
            d = Def(kind, node, path, _scope_of(frame)) if kind != "other" else Def("other")
            self._define_name(target.value, d, frame)
        elif isinstance(target, (cst.Tuple, cst.List)):
            starred = any(isinstance(e, cst.StarredElement) for e in target.elements)
            for i, el in enumerate(target.elements):
                if starred:
                    self._define(el.value, "other", None, frame)
                else:
                    self._define(el.value, kind, node, frame, (*path, i))
        elif isinstance(target, cst.StarredElement):
            self._define(target.value, "other", None, frame)

    def _define_name(self, name: str, d: Def, frame: _Frame) -> None:
        defs = Defs(frozenset({d}))
        key = _DEF + name
        frame.env[key] = defs
        summary = self._summary[0 if frame.info is None else id(frame.info.node)]
        old = summary.get(key)
        summary[key] = defs if old is None else Defs(old.items | defs.items)  # type: ignore[union-attr]

    def _record_read(self, node: cst.Name, frame: _Frame) -> None:
        name = node.value
        defs = frame.env.get(_DEF + name)
        info = frame.info
        if defs is not None:
            self._reads[id(node)] = (0 if info is None else id(info.node), name, defs)
            return
        scope = 0
        if info is not None:
            if name in info.locals:
                scope = id(info.node)
            else:
                for outer in reversed(info.chain):
                    if name in self._infos[id(outer)].locals:
                        scope = id(outer)
                        break
        self._reads[id(node)] = (scope, name, None)

    def _bind_name(self, name: str, value: object, frame: _Frame) -> None:
        frame.env[name] = value
        scope = 0 if frame.info is None else id(frame.info.node)
        summary = self._summary[scope]
        old = summary.get(name)
        new = join(old, value)
        if new != old or name not in summary:
            summary[name] = new
            self._changed(("s", scope, name))

    def _assign_dotted(self, dotted: str, value: object, frame: _Frame) -> None:
        if "." not in dotted:
            self._bind_name(dotted, value, frame)
            return
        frame.env[dotted] = value
        root, _, rest = dotted.partition(".")
        if "." in rest:
            return
        owner = self._lookup(root, frame) if root != self._self_name(frame) else self._self_value(frame)
        cls = owner.cls if isinstance(owner, (InstanceV, ModuleV)) else None
        if cls is not None and cls in self.classes:
            table = self._attrs.setdefault(cls, {})
            old = table.get(rest)
            new = join(old, value)
            if new != old or rest not in table:
                table[rest] = new
                self._changed(("a", cls, rest))

    def _self_value(self, frame: _Frame) -> object:
        info = frame.info
        assert info is not None and info.cls is not None
        name = info.cls.name.value
        return ModuleV(name) if self.is_module_class(name) else InstanceV(name)

    # ------------------------------------------------------------------ lookup
    def _lookup(self, dotted: str, frame: _Frame, guess: bool = True) -> object:
        if dotted in frame.env:
            value = frame.env[dotted]
            return UNKNOWN if value is None else value
        head, _, rest = dotted.partition(".")
        if rest:
            base = self._lookup(head, frame)
            for part in rest.split("."):
                base = self._attribute(base, part, frame)
            return base
        info = frame.info
        if info is not None:
            if dotted in info.locals:
                return UNKNOWN  # local, not bound on this path yet
            for outer in reversed(info.chain):
                if dotted in self._infos[id(outer)].locals:
                    self._read(("s", id(outer), dotted))
                    v = self._summary[id(outer)].get(dotted)
                    return UNKNOWN if v is None else v
            self._read(("s", 0, dotted))
            if dotted in self._summary[0]:
                v = self._summary[0][dotted]
                return UNKNOWN if v is None else v
        if self.names.module_scope.bindings.get(dotted) is not None or self.names.lookup(dotted) is not None:
            return UNKNOWN  # imported, or bound in a way not followed
        return _by_name(dotted) if guess else UNKNOWN

    def _attribute(self, base: object, attr: str, frame: _Frame) -> object:
        if isinstance(base, (InstanceV, ModuleV)) and base.cls in self.classes:
            self._read(("a", base.cls, attr))
            table = self._attrs.get(base.cls, {})
            method = self.method(base.cls, attr)
            if method is not None:
                # A method, or a property that an assignment may go through: not followed.
                property_like = attr in table or any(
                    isinstance(d.decorator, (cst.Name, cst.Attribute)) and "property" in self.code(d.decorator)
                    for d in method.decorators
                )
                return UNKNOWN if property_like else FunctionV(method, base)
            if attr in table:
                return table[attr]
            return _by_name(attr)
        if isinstance(base, TensorV):
            # batch.x of a batch structure is still the batch's; x.shape/x.device are not tensors.
            if attr in ("shape", "device", "dtype", "ndim", "is_cuda", "grad_fn"):
                return UNKNOWN
            return TensorV(base.placement, _no_root(base.origin), base.grad)
        if isinstance(base, (ModuleV, LoaderV)):
            return UNKNOWN
        return _by_name(attr) if base is UNKNOWN else UNKNOWN

    # ------------------------------------------------------------------ expressions
    def _ev(self, expr: cst.BaseExpression, frame: _Frame, discarded: bool = False) -> object:
        # Exact type tests: libcst's classes are ABCs, and isinstance on them is slow.
        t = type(expr)
        if t is cst.Name:
            if self._recording:
                self._record_read(expr, frame)
            return self._lookup(expr.value, frame)
        if t is cst.Attribute:
            dotted = dotted_name(expr)
            if dotted is not None and dotted in frame.env:
                return self._lookup(dotted, frame)
            base = self._ev(expr.value, frame)
            attr = expr.attr.value
            if isinstance(base, TensorV):
                return UNKNOWN if attr in ("shape", "device", "dtype", "ndim", "is_cuda") else TensorV(base.placement, _no_root(base.origin), base.grad)
            if dotted is not None and isinstance(expr.value, cst.Name) and expr.value.value == self._self_name(frame):
                return self._attribute(self._self_value(frame), attr, frame)
            value = self._attribute(base, attr, frame)
            if value is not UNKNOWN or dotted is None:
                return value
            if "." in dotted and isinstance(base, (InstanceV, ModuleV)) and base.cls in self.classes:
                return value
            return _by_name(attr) if base is UNKNOWN and not self._qualname(expr) else value
        if t is cst.Call:
            return self._call(expr, frame, discarded)
        if t is cst.Subscript:
            base = self._ev(expr.value, frame)
            for el in expr.slice:
                if isinstance(el.slice, cst.Index):
                    self._ev(el.slice.value, frame)
            if isinstance(base, TensorV):
                return TensorV(base.placement, _no_root(base.origin), base.grad, base.act, base.act_site)
            if isinstance(base, TupleV) and len(expr.slice) == 1 and isinstance(expr.slice[0].slice, cst.Index):
                idx = expr.slice[0].slice.value
                if isinstance(idx, cst.Integer) and int(idx.value) < len(base.items):
                    return base.items[int(idx.value)]
            if isinstance(base, _Container):
                return base.item
            d = dotted_name(expr.value)
            if base is UNKNOWN and d is not None and "loader" in d.lower():
                return LoaderV(self.code(expr))
            if isinstance(base, LoaderV):
                return LoaderV(self.code(expr), base.yields_cpu)
            return UNKNOWN
        if t in (cst.Tuple, cst.List):
            items = tuple(self._ev(e.value, frame) for e in expr.elements)
            if any(isinstance(e, cst.StarredElement) for e in expr.elements):
                return UNKNOWN
            return TupleV(items)
        if t is cst.Dict:
            values = []
            for el in expr.elements:
                if isinstance(el, cst.DictElement):
                    self._ev(el.key, frame)
                    values.append(self._ev(el.value, frame))
                else:
                    values.append(UNKNOWN)
                    self._ev(el.value, frame)
            loaders = [v for v in values if isinstance(v, LoaderV)]
            if values and len(loaders) == len(values) and all(v.yields_cpu for v in loaders):
                return _Container(LoaderV(""))
            return UNKNOWN
        if t is cst.UnaryOperation:
            v = self._ev(expr.expression, frame)
            return _derived(v)
        if t is cst.BinaryOperation:
            left, right = self._ev(expr.left, frame), self._ev(expr.right, frame)
            if isinstance(expr.right, (cst.Integer, cst.Float)):
                return _derived(left)
            if isinstance(expr.left, (cst.Integer, cst.Float)):
                return _derived(right)
            if isinstance(left, TensorV) and isinstance(right, TensorV) and left.placement is right.placement:
                return TensorV(left.placement, None, left.grad or right.grad)
            if any(isinstance(v, TensorV) and v.grad is True for v in (left, right)):
                return TensorV(None, None, True)  # ``loss * x.size(0)``: still in the graph, device unknown
            return UNKNOWN
        if t is cst.IfExp:
            self._ev(expr.test, frame)
            return join(self._ev(expr.body, frame), self._ev(expr.orelse, frame))
        if t in (cst.ListComp, cst.SetComp, cst.GeneratorExp, cst.DictComp):
            self._comprehension(expr, frame)
            return IteratorV(UNKNOWN, True) if isinstance(expr, cst.GeneratorExp) else UNKNOWN
        if t is cst.NamedExpr:
            value = self._ev(expr.value, frame)
            self._bind(expr.target, value, expr, frame)
            self._define(expr.target, "other", None, frame)
            return value
        if t in (cst.Lambda, cst.Integer, cst.Float, cst.Imaginary, cst.Ellipsis):
            return UNKNOWN
        if t is cst.Comparison:
            self._ev(expr.left, frame)
            for target in expr.comparisons:
                self._ev(target.comparator, frame)
            return UNKNOWN
        if t is cst.BooleanOperation:
            return join(self._ev(expr.left, frame), self._ev(expr.right, frame))
        if t is cst.FormattedString:
            for part in expr.parts:
                if isinstance(part, cst.FormattedStringExpression):
                    self._ev(part.expression, frame)
            return UNKNOWN
        if t is cst.SimpleString:
            raw = expr.value
            if len(raw) > 16 or not any(d in raw for d in ("cpu", "cuda", "mps", "xpu", "xla")):
                return UNKNOWN  # only short device strings matter
            text = (literal_string(expr) or "").strip().lower()
            if text.startswith("cpu"):
                return DeviceV(CPU)
            if text.startswith(("cuda", "mps", "xpu", "xla")):
                return DeviceV(Placement("accel", self.code(expr), expr))
            return UNKNOWN
        for child in _children(expr):
            if isinstance(child, cst.BaseExpression):
                self._ev(child, frame)
            elif isinstance(child, (cst.Arg, cst.Element, cst.ComparisonTarget, cst.FormattedStringExpression)):
                for c in _children(child):
                    if isinstance(c, cst.BaseExpression):
                        self._ev(c, frame)
        return UNKNOWN

    def _comprehension(self, expr, frame: _Frame) -> None:
        sub = replace(frame, env=dict(frame.env))
        comp = expr.for_in
        while comp is not None:
            it = self._ev(comp.iter, sub)
            self._bind(comp.target, self._element(comp.iter, it, sub), comp, sub)
            self._define(comp.target, "other", None, sub)
            for cond in comp.ifs:
                self._ev(cond.test, sub)
            comp = comp.inner_for_in
        if isinstance(expr, cst.DictComp):
            self._ev(expr.key, sub)
            self._ev(expr.value, sub)
        else:
            self._ev(expr.elt, sub)

    def _element(self, node: cst.BaseExpression, it: object, frame: _Frame) -> object:
        """What iterating ``node`` (whose value is ``it``) binds."""
        if isinstance(node, cst.Call) and node.args:
            qual = self._qualname(node.func) or ""
            inner = node.args[0].value
            if qual == "builtins.enumerate":
                return TupleV((UNKNOWN, self._element(inner, self._peek(inner, frame), frame)))
            if qual == "builtins.iter" or qual.split(".", 1)[0] == "tqdm":
                return self._element(inner, self._peek(inner, frame), frame)
        if isinstance(it, IteratorV):
            it = it.over
        if isinstance(it, LoaderV):
            text = self.code(node) if isinstance(node, (cst.Name, cst.Attribute, cst.Subscript)) else it.text
            return TensorV(CPU, Batch(text), None) if it.yields_cpu else UNKNOWN
        if isinstance(it, _Container):
            return it.item
        return UNKNOWN

    def _peek(self, expr: cst.BaseExpression, frame: _Frame) -> object:
        """The value of an expression already evaluated (no facts recorded twice)."""
        recording = self._recording
        self._recording = False
        try:
            return self._ev(expr, frame)
        finally:
            self._recording = recording

    # ------------------------------------------------------------------ calls
    def _call(self, call: cst.Call, frame: _Frame, discarded: bool) -> object:
        func = call.func
        receiver: object = None
        if isinstance(func, cst.Attribute):
            receiver = self._ev(func.value, frame)
            dotted = dotted_name(func)
            callee = self._lookup(dotted, frame) if dotted is not None and dotted in frame.env else self._attribute(receiver, func.attr.value, frame)
        elif isinstance(func, cst.Name):
            if self._recording:
                self._record_read(func, frame)
            callee = self._lookup(func.value, frame, guess=False)  # make_model() is no model
            if callee is UNKNOWN and looks_like_loss_name(func.value):
                callee = self._lookup(func.value, frame)  # criterion(out, y) unbound in the file: a loss by its name
        else:
            callee = self._ev(func, frame)
        args = tuple(self._ev(a.value, frame) for a in call.args)
        if self._recording:
            if isinstance(func, cst.Attribute) and func.attr.value in ("zero_", "fill_") and _mentions_grad(func.value):
                self._grad_clear(call, frame)
            where = frame.info.node if frame.info else None
            recorded = args
            if TensorV in map(type, args):
                recorded = tuple(self._shaped(v, a.value, where) for v, a in zip(args, call.args))
            seen = self._shaped(receiver, func.value, where) if type(receiver) is TensorV else receiver  # type: ignore[union-attr]
            fact = CallFact(call, callee, seen, recorded, where, tuple(frame.loops), frame.grad[-1] if frame.grad else None, discarded)
            self.facts[id(call)] = fact
            for loop in frame.loops:
                self.regions[id(loop)].calls.append(fact)
            if frame.info is not None:
                self.regions[id(frame.info.node)].calls.append(fact)
        result = self._result(call, callee, receiver, args, frame)
        if any(type(v) is ModuleV for v in frame.env.values()):
            self._mode_effects(call, callee, receiver, args, frame)
        return result

    # ------------------------------------------------------------------ train/eval mode
    def _shaped(self, value: object, expr: cst.BaseExpression, where: cst.FunctionDef | None) -> object:
        """A recorded tensor that can tell its shape (asked only when a rule reads ``.shape``)."""
        if type(value) is not TensorV:
            return value
        return replace(value, at=_ShapeAt(self, expr, where))  # type: ignore[arg-type]

    def _mode_effects(self, call: cst.Call, callee: object, receiver: object, args: tuple, frame: _Frame) -> None:
        """What a call does to the train/eval mode of the modules this frame holds: a function of
        the file that sets the mode of a module it is given leaves it in the mode it ends with;
        a call that may set modes otherwise (a function of the file that calls train()/eval(), unknown
        code given a module or an object holding one) leaves every mode unknown."""
        if isinstance(callee, (ModuleV, LossFnV)):
            return
        func = call.func
        passed: dict[str, int | None] = {}
        exits: tuple = ()
        if isinstance(callee, FunctionV):
            if not self._touches_modes(callee.node, set()):
                return
            info = self._infos.get(id(callee.node))
            self._read(("x", id(callee.node)))
            exits = self._mode_exits.get(id(callee.node)) or (self._written_exits(info) if info is not None else ())
            offset = (0 if callee.bound is None else 1) + len(callee.partial)
            if callee.bound is not None and isinstance(func, cst.Attribute) and (d := dotted_name(func.value)) is not None:
                passed[d] = 0
            for i, arg in enumerate(call.args):
                if arg.star:
                    break
                d = dotted_name(arg.value)
                if d is None or info is None:
                    continue
                if arg.keyword is None:
                    passed[d] = offset + i
                elif arg.keyword.value in info.params:
                    passed[d] = info.params.index(arg.keyword.value)
        elif isinstance(callee, ClassV):
            init = self.method(callee.node.name.value, "__init__")
            if init is None or not self._touches_modes(init, set()):
                return
        else:
            qual = self._qualname(func)
            if qual is not None and qual.split(".", 1)[0] in SAFE_ROOTS:
                return
            if isinstance(receiver, (ModuleV, OptimizerV, SchedulerV, ScalerV, TensorV, LoaderV, LossFnV)):
                return  # torch's own methods (train()/eval() are followed where they are called)
            if not any(isinstance(v, (ModuleV, InstanceV)) for v in (receiver, *args)):
                return
        for name, value in list(frame.env.items()):
            if not isinstance(value, ModuleV):
                continue
            index = passed.get(name)
            mode = exits[index] if index is not None and index < len(exits) else None
            if value.training != mode or value.back is not None:
                self._assign_dotted(name, replace(value, training=mode, back=None), frame)

    @staticmethod
    def _written_exits(info: FuncInfo) -> tuple:
        """Before a function has run: the mode its body's own top-level ``p.train()``/``p.eval()``
        statements leave each parameter in (so that early joins are not poisoned by "unknown")."""
        modes: dict[str, bool | None] = {}
        for stmt in _body(info.node.body):
            if not isinstance(stmt, cst.SimpleStatementLine):
                continue
            for small in stmt.body:
                call = small.value if isinstance(small, cst.Expr) else None
                if isinstance(call, cst.Call) and isinstance(call.func, cst.Attribute) and call.func.attr.value in ("train", "eval"):
                    if isinstance(call.func.value, cst.Name) and call.func.value.value in info.params:
                        modes[call.func.value.value] = _mode_arg(call)
        return tuple(modes.get(p) for p in info.params)

    def _touches_modes(self, func: cst.FunctionDef, seen: set[int]) -> bool:
        """May a function of the file change a module's train/eval mode? It calls ``train``/``eval``,
        or gives a module (or an object) to code the file does not show, or calls a function that may.
        A function not interpreted yet may."""
        if id(func) in seen:
            return False
        seen.add(id(func))
        region = self.regions.get(id(func))
        if region is None:
            return True
        for fact in region.calls:
            f = fact.node.func
            if isinstance(f, cst.Attribute) and f.attr.value in ("train", "eval"):
                return True
            if isinstance(fact.func, FunctionV):
                if self._touches_modes(fact.func.node, seen):
                    return True
                continue
            if isinstance(fact.func, ClassV):
                init = self.method(fact.func.node.name.value, "__init__")
                if init is not None and self._touches_modes(init, seen):
                    return True
                continue
            if isinstance(fact.func, (ModuleV, LossFnV)):
                continue
            qual = self._qualname(f)
            if qual is not None and qual.split(".", 1)[0] in SAFE_ROOTS:
                continue
            if isinstance(fact.receiver, (ModuleV, OptimizerV, SchedulerV, ScalerV, TensorV, LoaderV, LossFnV)):
                continue
            if any(isinstance(v, (ModuleV, InstanceV)) for v in (fact.receiver, *fact.args)):
                return True
        return False

    def _result(self, call: cst.Call, callee: object, receiver: object, args: tuple, frame: _Frame) -> object:
        func = call.func
        if isinstance(func, cst.Attribute) and receiver is not None:
            method = func.attr.value
            if isinstance(receiver, TensorV):
                return self._tensor_method(call, method, receiver, frame)
            if isinstance(receiver, ModuleV) and isinstance(callee, ModuleV):
                out = self.module_output(callee)  # self.softmax(x), self.classifier(x)
                if out is not None:
                    return TensorV(None, None, None, out.act, out.act_site or call)
            if isinstance(receiver, ModuleV) and not isinstance(callee, FunctionV):
                return self._module_method(call, method, receiver, frame)
            if method in _ACTIVATION_METHODS and receiver is UNKNOWN and self._qualname(func) is None:
                return TensorV(None, None, None, method, call)  # x.softmax(dim=1) on a value the model does not know
            if method in ("to", "cuda") and receiver is UNKNOWN and self._qualname(func) is None:
                placement = self._move_placement(call, frame)
                if placement is not None and placement != CPU:
                    return replace(self._module_of(func.value, frame), placement=placement)
                if placement is None and method == "to":
                    return UNKNOWN
            if method in ("next", "__next__") and not call.args:
                return self._draw(receiver)
            if method == "__iter__" and not call.args:
                return IteratorV(self._named(receiver, func.value))
        if isinstance(callee, FunctionV):
            return self._call_function(callee, call, args, frame)
        if isinstance(callee, ClassV):
            return self._construct(callee, call, args, frame)
        if isinstance(callee, ModuleV):
            forward = self.method(callee.cls, "forward") if callee.cls in self.classes else None
            if forward is not None:
                self._pass_arguments(forward, (callee, *args), call)
            out = self.module_output(callee)
            if out is not None:
                return TensorV(callee.placement, None, self._graph(frame), out.act, out.act_site or call, via=self.code(func))
            return TensorV(callee.placement, None, self._graph(frame), via=self.code(func))
        if isinstance(callee, LossFnV):
            return TensorV(None, None, self._graph(frame))
        qual = self._qualname(func)
        if qual is None:
            return UNKNOWN
        return self._library_call(qual, call, args, frame)

    def _library_call(self, qual: str, call: cst.Call, args: tuple, frame: _Frame) -> object:
        first = args[0] if args else UNKNOWN
        if qual in DATALOADERS:
            return LoaderV("DataLoader(...)", self._yields_cpu(call, frame), True)
        if qual in PARALLEL:
            return replace(_as_module(first), moves_inputs=True)
        if qual in _TRANSPARENT:
            return first
        if qual == "builtins.iter":
            return IteratorV(UNKNOWN, True) if len(call.args) == 2 else IteratorV(self._named(first, call.args[0].value))
        if qual == "builtins.next":
            return self._draw(first)
        if qual in _BUILTIN_ITERATORS or (qual.startswith("itertools.") and qual[10:] in _ITERTOOLS):
            return IteratorV(UNKNOWN, True)
        if qual == "torch.device":
            return DeviceV(self._placement_of(call.args[0].value, frame, 0) if call.args else CPU)
        if qual == "torch.autograd.Variable":
            return first
        if qual == "functools.partial" and isinstance(first, FunctionV):
            return replace(first, partial=first.partial + args[1:])
        if qual.endswith("TensorDataset"):
            return DatasetV(any(self._on_device(a.value, frame) for a in call.args))
        if is_torch_optimizer_qualname(qual):
            return OptimizerV(self._param_root(call), True, self._over_tensors(call))
        if qual.startswith("torch.optim.") and is_scheduler_qualname(qual):
            return SchedulerV(qual)
        if qual.endswith("GradScaler"):
            return ScalerV()
        if is_loss_function_qualname(qual) and not qual.startswith("torch.nn.functional."):
            return LossFnV(qual)
        if is_loss_function_qualname(qual):
            return TensorV(None, None, self._graph(frame))
        if qual in ACTIVATIONS:
            return TensorV(None, None, None, ACTIVATIONS[qual], call)
        head, _, name = qual.rpartition(".")
        if head in ("torch.nn", "torch.nn.modules") and name[:1].isupper():
            output = ACTIVATION_MODULES.get(name)
            mode = _torch_class_mode(name, call)
            if name == "Sequential":
                layers = [a for a, arg in zip(args, call.args) if not arg.star]
                if layers and len(layers) == len(call.args):
                    output = self.module_output(layers[-1]).act if self.module_output(layers[-1]) is not None else None  # type: ignore[union-attr]
                    modes = [self.mode_dependent(v) for v in layers]
                    mode = True if any(modes) else (False if all(m is False for m in modes) else None)
            return ModuleV(qual, training=True, output=output, mode_dependent=mode)  # a new module trains
        if head == "torch" and name in _TENSOR_FACTORIES:
            device = next((a.value for a in call.args if a.keyword is not None and a.keyword.value == "device"), None)
            if name in ("stack", "cat", "zeros_like", "ones_like", "randn_like", "rand_like") and isinstance(first, TensorV):
                return TensorV(first.placement, None, first.grad)
            if name in ("stack", "cat") or name.endswith("_like"):
                return UNKNOWN
            return TensorV(CPU if device is None else self._placement_of(device, frame, 0), None, False)
        return UNKNOWN

    def _tensor_method(self, call: cst.Call, method: str, t: TensorV, frame: _Frame) -> object:
        if method in ("to", "cuda", "cpu"):
            placement = self._move_placement(call, frame)
            if placement is None:
                return t if method == "to" and call.args and not any(a.star for a in call.args) else TensorV(None, t.origin, t.grad)
            return TensorV(placement, t.origin, t.grad)
        if method in ("detach", "detach_"):
            return TensorV(t.placement, t.origin, False)
        if method in _ACTIVATION_METHODS:
            return TensorV(t.placement, t.origin, t.grad, method, call)
        if method in _SHAPE_METHODS and t.act is not None:
            return TensorV(t.placement, t.origin, t.grad, t.act, t.act_site)
        if method in DERIVING_METHODS:
            return TensorV(t.placement, t.origin, t.grad)  # x.view(...) is still x for a fix
        if method in ("next", "__next__"):
            return UNKNOWN
        return UNKNOWN

    def _module_method(self, call: cst.Call, method: str, m: ModuleV, frame: _Frame) -> object:
        if method in ("to", "cuda", "cpu"):
            placement = self._move_placement(call, frame)
            if placement is None:
                return m
            return replace(m, placement=None if placement == CPU else placement)
        if method in ("train", "eval"):
            return replace(m, training=_mode_arg(call), back=None)
        if method in _MODULE_SELF_METHODS:
            return m
        if method in ("parameters", "named_parameters"):
            return ParamsV(dotted_name(call.func.value))  # type: ignore[attr-defined]
        if method == "forward":
            return TensorV(m.placement, None, True)
        return UNKNOWN

    def _move_placement(self, call: cst.Call, frame: _Frame) -> Placement | None:
        """Where ``x.to(...)``/``.cuda(...)``/``.cpu()`` puts x; None when it is a dtype change or unknown."""
        func = call.func
        assert isinstance(func, cst.Attribute)
        method = func.attr.value
        if any(a.star for a in call.args):
            return None
        if method == "cpu":
            return CPU
        if method == "cuda":
            text = ", ".join(
                self.code(a.value) if a.keyword is None else f"{a.keyword.value}={self.code(a.value)}" for a in call.args
            )
            return Placement("accel", None, call, text)
        device = next((a.value for a in call.args if a.keyword is not None and a.keyword.value == "device"), None)
        if device is None:
            first = next((a.value for a in call.args if a.keyword is None), None)
            if first is None or is_dtype_expr(first, self._qualname):
                return None
            device = first
        placement = self._placement_of(device, frame, 0)
        if placement == CPU:
            return CPU
        return Placement("accel", self.code(device), call)

    def _placement_of(self, expr: cst.BaseExpression, frame: _Frame, depth: int) -> Placement:
        text = literal_string(expr)
        if text is not None:
            return CPU if text.strip().lower().startswith("cpu") else Placement("accel", self.code(expr), expr)
        if isinstance(expr, cst.Call) and self._qualname(expr.func) == "torch.device" and expr.args and depth < 4:
            return self._placement_of(expr.args[0].value, frame, depth + 1)
        if isinstance(expr, (cst.Name, cst.Attribute)):
            value = self._peek(expr, frame)
            if isinstance(value, DeviceV):
                return CPU if value.placement == CPU else Placement("accel", self.code(expr), expr)
        return Placement("accel", self.code(expr), expr)

    def _module_of(self, expr: cst.BaseExpression, frame: _Frame) -> ModuleV:
        """The module a move applies to: ``Net(...)``, ``nn.DataParallel(net)``, or unknown."""
        value = self._peek(expr, frame)
        if isinstance(value, ModuleV):
            return value
        return ModuleV(None, None, self._wraps_parallel(expr))

    def _wraps_parallel(self, expr: cst.BaseExpression) -> bool:
        while isinstance(expr, cst.Call):
            if self._qualname(expr.func) in PARALLEL:
                return True
            if not isinstance(expr.func, cst.Attribute):
                return False
            expr = expr.func.value
        return False

    def _named(self, value: object, expr: cst.BaseExpression) -> object:
        """A loader reached through a name is called by that name in messages (``testloader``)."""
        if isinstance(value, LoaderV) and isinstance(expr, (cst.Name, cst.Attribute, cst.Subscript)):
            return replace(value, text=self.code(expr))
        return value

    def _draw(self, it: object) -> object:
        if isinstance(it, IteratorV) and isinstance(it.over, LoaderV) and it.over.yields_cpu:
            return TensorV(CPU, Batch(it.over.text), None)
        return UNKNOWN

    def _construct(self, cls: ClassV, call: cst.Call, args: tuple, frame: _Frame) -> object:
        name = cls.node.name.value
        instance: object = ModuleV(name, None, self._forward_moves_inputs(name), True) if cls.is_module else InstanceV(name)
        init = self.method(name, "__init__")
        if init is not None:
            self._pass_arguments(init, (instance, *args), call)
        return instance

    def _call_function(self, f: FunctionV, call: cst.Call, args: tuple, frame: _Frame) -> object:
        full = (*(() if f.bound is None else (f.bound,)), *f.partial, *args)
        self._sites.setdefault(id(f.node), {})[id(call)] = (call, f.bound is None and not f.partial)
        self._pass_arguments(f.node, full, call)
        info = self._infos.get(id(f.node))
        if info is None or frame.depth >= _MAX_DEPTH or id(f.node) in self._stack:
            return UNKNOWN
        if not info.returns_value:
            return UNKNOWN
        key = (id(f.node), full if all(a.keyword is None and not a.star for a in call.args) else None, self._version)
        if key in self._returns:
            return self._returns[key]
        if self._budget <= 0:
            return UNKNOWN  # a huge file: values from further calls stay unknown (rules stay silent)
        self._budget -= 1
        self._returns[key] = UNKNOWN
        positional = list(full) if key[1] is not None else None
        sub = self._enter(info, positional, frame.depth + 1)
        recording = self._recording
        self._recording = False
        self._stack.append(id(f.node))
        for fn in (*info.chain, info.node):
            self.names.push_function(fn)
        try:
            self._block(_body(info.node.body), sub)
        finally:
            for _ in (*info.chain, info.node):
                self.names.pop_function()
            self._stack.pop()
            self._recording = recording
        result = UNKNOWN if sub.returns is None else sub.returns
        self._returns[key] = result
        return result

    def _pass_arguments(self, func: cst.FunctionDef, values: tuple, call: cst.Call) -> None:
        """The parameters of ``func`` join the arguments of this call site."""
        info = self._infos.get(id(func))
        if info is None:
            return
        joined = self._params.setdefault(id(func), [None] * len(info.params))
        extra = len(values) - len(call.args)  # bound self / partial values first
        positional = list(values[:extra])
        keywords: dict[str, object] = {}
        for arg, value in zip(call.args, values[extra:]):
            if arg.star:
                positional = None  # type: ignore[assignment]
                break
            if arg.keyword is None:
                positional.append(value)
            else:
                keywords[arg.keyword.value] = value
        changed = False
        for i, name in enumerate(info.params):
            if positional is None:
                value = UNKNOWN
            elif i < len(positional):
                value = positional[i]
            else:
                value = keywords.get(name, UNKNOWN)
            new = value if joined[i] is None else join(joined[i], value)
            if new != joined[i] or joined[i] is None:
                joined[i] = new
                changed = True
        if changed:
            self._changed(("p", id(func)))

    # ------------------------------------------------------------------ loaders and devices
    def _yields_cpu(self, call: cst.Call, frame: _Frame) -> bool:
        dataset = None
        for i, arg in enumerate(call.args):
            if arg.keyword is not None:
                if arg.keyword.value == "collate_fn" and not (isinstance(arg.value, cst.Name) and arg.value.value == "None"):
                    return False
                if arg.keyword.value == "dataset":
                    dataset = arg.value
            elif i == 0:
                dataset = arg.value
        if dataset is None:
            return True
        value = self._peek(dataset, frame)
        if isinstance(value, DatasetV):
            return not value.on_device
        if isinstance(value, InstanceV) and self._mentions_device(self.classes[value.cls]):
            return False  # a dataset class of this file that may put its samples on a device
        if isinstance(dataset, cst.Call) and isinstance(dataset.func, cst.Name):
            made_by = self.functions.get(dataset.func.value)
            if made_by and self._mentions_device(made_by[0]):
                return False
        return True

    def _mentions_device(self, node: cst.CSTNode) -> bool:
        code = self.code(node)
        return ".to(" in code or ".cuda(" in code or "device" in code

    def _forward_moves_inputs(self, cls: str) -> bool:
        forward = self.method(cls, "forward")
        if forward is None:
            return False
        params = {p.name.value for p in forward.params.params} - {"self"}
        stack: list[cst.CSTNode] = [forward.body]
        while stack:
            cur = stack.pop()
            if isinstance(cur, cst.Call) and isinstance(cur.func, cst.Attribute) and cur.func.attr.value in ("to", "cuda"):
                root = dotted_name(cur.func.value)
                if root is not None and root.split(".", 1)[0] in params:
                    return True
            stack.extend(_children(cur))
        return False

    def _on_device(self, expr: cst.BaseExpression, frame: _Frame) -> bool:
        value = self._peek(expr, frame)
        if isinstance(value, TensorV):
            return value.placement != CPU
        return True  # cannot tell: assume it may be

    @staticmethod
    def _over_tensors(call: cst.Call) -> bool:
        """``Adam([image], ...)``: the parameters are a list of plain names, not a ``.parameters()`` call."""
        first = next((a.value for a in call.args if a.keyword is None or a.keyword.value == "params"), None)
        return isinstance(first, (cst.List, cst.Tuple)) and bool(first.elements) and all(
            isinstance(e, cst.Element) and isinstance(e.value, cst.Name) for e in first.elements
        )

    def _param_root(self, call: cst.Call) -> str | None:
        first = next((a.value for a in call.args if a.keyword is None or a.keyword.value == "params"), None)
        if not (isinstance(first, cst.Call) and isinstance(first.func, cst.Attribute)):
            return None
        if first.func.attr.value not in ("parameters", "named_parameters"):
            return None
        return dotted_name(first.func.value)

    @staticmethod
    def _graph(frame: _Frame) -> bool | None:
        """Does a result computed here carry an autograd graph (not under no_grad/inference_mode)?"""
        if frame.grad and frame.grad[-1] == "set_grad_enabled":
            return None  # type: ignore[return-value]  # on or off: unknown
        return not frame.grad or frame.grad[-1] == "enable_grad"

    def _grad_context(self, expr: cst.BaseExpression) -> str | None:
        func = expr.func if isinstance(expr, cst.Call) else expr
        return _GRAD_CONTEXTS.get(self._qualname(func) or "")

    def _qualname(self, expr: cst.BaseExpression) -> str | None:
        return self.names.qualname(expr)


class _ShapeAt:
    """Where a recorded tensor's shape question goes: its expression and function."""

    __slots__ = ("expr", "function", "model")

    def __init__(self, model: ProgramModel, expr: cst.BaseExpression, function: cst.FunctionDef | None) -> None:
        self.model = model
        self.expr = expr
        self.function = function

    def shape(self) -> Shape | None:
        return self.model.shape(self.expr, self.function)


@dataclass(frozen=True)
class _Container:
    """A dict or list literal whose items are all alike (``{'train': loader_a, 'val': loader_b}``)."""

    item: object


# Imported helpers from these packages never clear a model's gradients.
SAFE_ROOTS = frozenset(
    {
        "argparse", "builtins", "collections", "contextlib", "copy", "csv", "dataclasses", "datetime",
        "einops", "functools", "gc", "glob", "itertools", "json", "logging", "math", "matplotlib", "mlflow",
        "numpy", "operator", "os", "pandas", "pathlib", "pickle", "PIL", "random", "re", "scipy", "shutil",
        "sklearn", "statistics", "string", "sys", "tensorboardX", "time", "torch", "torchaudio", "torchtext",
        "torchvision", "tqdm", "typing", "wandb", "warnings",
    }
)  # fmt: skip
# Methods that receive an optimizer or model without touching its gradients.
_SAFE_CONSUMERS = frozenset(
    {"unscale_", "update", "state_dict", "load_state_dict", "add_param_group", "append", "save", "register", "step"}
)


# model, net, netG, ema_model, encoder, discriminator... (what else could the value be?)
_MODEL_NAME = re.compile(
    r"(?:^|_)(?:model|net|module)s?(?:$|_)|^net[gd]?$|^(?:\w+_)?(?:encoder|decoder|generator|discriminator|critic|classifier|backbone)$"
)


def _by_name(name: str) -> object:
    """What a name the file does not bind (or a parameter nobody passes) says it is."""
    low = name.lower()
    if "loader" in low:
        return LoaderV(name)
    if looks_like_optimizer_name(name):
        return OptimizerV()
    if looks_like_loss_name(name):
        return LossFnV()  # criterion, loss_fn: called on outputs, it gives a loss
    if name[:1].islower() and _MODEL_NAME.search(low):  # Net, Model: classes, not instances
        return ModuleV()
    return UNKNOWN


def _as_module(value: object) -> ModuleV:
    return value if isinstance(value, ModuleV) else ModuleV()


def _derived(value: object) -> object:
    """``-x``, ``x / 255``: the same tensor, as far as devices go (no longer an activation's output)."""
    if isinstance(value, TensorV):
        return replace(value, act=None, act_site=None) if value.act is not None else value
    return UNKNOWN


def _torch_class_mode(name: str, call: cst.Call) -> bool | None:
    """Does ``torch.nn.<name>(...)`` behave differently in train and eval mode? None: unknown."""
    if name in _MODE_DEPENDENT:
        return True
    if name in _MODE_INDEPENDENT or name in _CONTAINERS and not call.args:
        return False
    keyword = _MODE_BY_KEYWORD.get(name)
    if keyword is not None:
        value = next((a.value for a in call.args if a.keyword is not None and a.keyword.value == keyword), None)
        if any(a.star == "**" for a in call.args):
            return None
        if value is None:
            return False
        if isinstance(value, (cst.Integer, cst.Float)):
            return float(value.value) != 0
        if isinstance(value, cst.Name) and value.value in ("True", "False"):
            return value.value == "True"
        return None
    return None


def _scope_of(frame: _Frame) -> cst.FunctionDef | None:
    return None if frame.info is None else frame.info.node


def _statements_of(body) -> Iterator[cst.CSTNode]:
    """The statements of a body, through compound statements but not into defs and classes."""
    stack = list(reversed(list(body)))
    while stack:
        stmt = stack.pop()
        if isinstance(stmt, cst.SimpleStatementLine):
            yield from stmt.body
            continue
        yield stmt
        if isinstance(stmt, (cst.FunctionDef, cst.ClassDef)):
            continue
        children = []
        for attr in ("body", "orelse", "finalbody"):
            child = getattr(stmt, attr, None)
            if isinstance(child, cst.If):
                children.append(child)
            elif isinstance(child, (cst.Else, cst.Finally)):
                children.extend(_body(child.body))
            elif isinstance(child, cst.BaseSuite):
                children.extend(_body(child))
        for h in getattr(stmt, "handlers", ()) or ():
            children.extend(_body(h.body))
        for case in getattr(stmt, "cases", ()) or ():
            children.extend(_body(case.body))
        stack.extend(reversed(children))


def _no_root(origin: Batch | None) -> Batch | None:
    return None if origin is None else Batch(origin.loader)


def _join_all(values: list[object]) -> object:
    out: object = None
    for v in values:
        if v is None:
            return None if out is None and all(x is None for x in values) else _join_missing(values)
        out = join(out, v)
    return out


def _join_missing(values: list[object]) -> object:
    present = [v for v in values if v is not None]
    out: object = None
    for v in present:
        out = join(out, v)
    return out


def _join_envs(a: dict[str, object], b: dict[str, object]) -> dict[str, object]:
    return {k: _join_missing([a.get(k), b.get(k)]) for k in set(a) | set(b)}


def _mode_arg(call: cst.Call) -> bool | None:
    """The mode ``m.train(...)``/``m.eval()`` sets: None for ``m.train(flag)``."""
    func = call.func
    if isinstance(func, cst.Attribute) and func.attr.value == "eval":
        return False
    args = [a for a in call.args if a.keyword is None or a.keyword.value == "mode"]
    if not args:
        return True
    value = args[0].value
    if isinstance(value, cst.Name) and value.value in ("True", "False"):
        return value.value == "True"
    return None


def _is_zero_grad(call: cst.Call) -> bool:
    return isinstance(call.func, cst.Attribute) and "zero_grad" in call.func.attr.value


def _mentions_grad(node: cst.BaseExpression) -> bool:
    """Does an attribute chain go through ``.grad`` (``p.grad``, ``p.grad.data``)?"""
    while isinstance(node, (cst.Attribute, cst.Subscript)):
        if isinstance(node, cst.Attribute) and node.attr.value == "grad":
            return True
        node = node.value
    return False


def _del_targets(target: cst.BaseExpression):
    if isinstance(target, (cst.Tuple, cst.List)):
        for el in target.elements:
            yield from _del_targets(el.value)
    elif isinstance(target, (cst.Name, cst.Attribute)):
        yield target


def _body(suite) -> list:
    if isinstance(suite, cst.IndentedBlock):
        return list(suite.body)
    if isinstance(suite, cst.SimpleStatementSuite):
        return []
    return []


_KEY = "analysis.model"


def program_model(context: Any) -> ProgramModel:
    """The model of the file behind a rule ``Context``: built on first use, then shared."""
    found = context.cache.get(_KEY)
    if not isinstance(found, ProgramModel):
        # Built from the module's point of view, wherever the traversal is when a rule first
        # asks (rules ask lazily, from inside functions too): the resolver's function stack
        # is set aside meanwhile, so the model does not depend on which rule asked first.
        names = context.names
        stack = getattr(names, "_stack", None)
        if stack:
            names._stack = []
        try:
            found = ProgramModel(context.module, names, context.code, file_tables(context))
        finally:
            if stack:
                names._stack = stack
        context.cache[_KEY] = found
    return found
