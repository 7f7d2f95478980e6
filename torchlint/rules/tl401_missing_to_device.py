from __future__ import annotations

import dataclasses
import re
from collections import deque
from dataclasses import dataclass, field
from typing import Union

import libcst as cst

from torchlint.analysis.positions import positions
from torchlint.analysis.training import (
    DERIVING_METHODS,
    calls_in,
    dotted_name,
    is_dtype_expr,
    is_loss_function_qualname,
    last_part,
    literal_string,
    looks_like_loss_name,
    target_names,
)
from torchlint.names import function_scope
from torchlint.rules.base import FixSpec, InsertAtLine, Invalid, RelatedSpec, Replace, Rule

_DATALOADERS = frozenset({"torch.utils.data.DataLoader", "torch.utils.data.dataloader.DataLoader"})
_PARALLEL = frozenset(
    {
        "torch.nn.DataParallel",
        "torch.nn.parallel.DataParallel",
        "torch.nn.parallel.data_parallel.DataParallel",
        "torch.nn.parallel.DistributedDataParallel",
        "torch.nn.parallel.distributed.DistributedDataParallel",
    }
)
_TRANSPARENT_WRAPPERS = frozenset({"torch.compile", "torch.jit.script"})
# nn.Module methods that return the module itself.
_MODULE_SELF_METHODS = frozenset({"train", "eval", "float", "half", "double", "bfloat16", "requires_grad_", "share_memory"})
# Sequence lengths are meant to stay on the CPU (pack_padded_sequence, CTC).
_CPU_BY_DESIGN = re.compile(r"(?:^|_)(?:len|lens|length|lengths|seq_len|seq_lens|sizes)(?:$|_)|lengths?$", re.IGNORECASE)
_NOT_TENSOR_ATTRS = frozenset({"shape", "device", "dtype", "ndim", "is_cuda"})

_UNKNOWN = object()  # bound, but to something this analysis does not follow
_PARAM = object()  # a function parameter


@dataclass(frozen=True)
class _Move:
    """A model put on an accelerator: ``model = Net().to(device)``, ``model.cuda()``."""

    model: str
    node: cst.CSTNode
    device: str | None  # source text of the device; None for .cuda()
    cuda_args: str = ""
    # DataParallel/DDP, or a forward() in this file that moves its inputs itself.
    moves_inputs: bool = False
    # The class of this file the model was built from (Net for Net().to(device)), if known.
    model_class: str | None = None

    @property
    def call_text(self) -> str:
        return f".to({self.device})" if self.device is not None else f".cuda({self.cuda_args})"

    @property
    def label(self) -> str:
        return self.device if self.device is not None else "cuda"


@dataclass(frozen=True)
class _Batch:
    """A value drawn from a DataLoader and not moved since."""

    loader: str
    root: str | None = None  # the name it is bound to, when it is a name
    site: cst.CSTNode | None = None  # the For or statement line that bound ``root``


@dataclass(frozen=True)
class _Output:
    """What a moved model returned: it lives on the model's device."""

    move: _Move


_Kind = Union[_Batch, _Output]


@dataclass(eq=False)
class _State:
    """What one scope knows, statement by statement."""

    outer: "_State | None"
    local: frozenset[str] | None  # names bound in the function; None for the module scope
    kinds: dict[str, _Kind] = field(default_factory=dict)
    moves: dict[str, _Move] = field(default_factory=dict)
    values: dict[str, object] = field(default_factory=dict)


class MissingToDevice(Rule):
    """
    ## What it does
    Checks for tensors drawn from a `DataLoader` that reach a model moved to an
    accelerator (`model.to(device)`, `model.cuda()`), or a loss together with
    that model's output, without being moved to the same device.

    A loader is a name bound to `torch.utils.data.DataLoader(...)` (without a
    custom `collate_fn`, and not over a `TensorDataset` of tensors already on a
    device), or a function parameter or undefined name containing `loader`.
    The model and the loop must be in the same scope, or the loop's function
    must use the module-level model directly: a model received as a parameter
    is never assumed to be on a device. `.to(...)` and `.cuda(...)` in any form
    (`non_blocking=True`, list comprehensions, a helper function) count as moved;
    models moved to `"cpu"` and models wrapped in `DataParallel`/DDP (which move
    their inputs) are not flagged at the model call. Sequence-length arguments
    (`lengths`, `seq_len`) are left alone: they often must stay on the CPU.

    ## Why is this bad?
    A CUDA model cannot take CPU tensors: the first forward pass fails with
    `RuntimeError: Expected all tensors to be on the same device` (or `Input type
    (torch.FloatTensor) and weight type (torch.cuda.FloatTensor) should be the
    same`). The code runs on a CPU-only laptop and fails on the GPU machine, so
    the mistake survives until the expensive run.

    ## Example
    ```python
    model = Net().to(device)
    for images, labels in trainloader:
        outputs = model(images)
        loss = criterion(outputs, labels)
    ```

    ## Use instead
    ```python
    model = Net().to(device)
    for images, labels in trainloader:
        images = images.to(device)
        labels = labels.to(device)
        outputs = model(images)
        loss = criterion(outputs, labels)
    ```

    ## Fix safety
    The fix moves the tensor with the device expression the model was moved
    with (`.to(device)`, or `.cuda()` for `.cuda()` models), right after the
    tensor is bound (the top of the loop body, or after `x, y = batch`); for an
    expression like `data[0]` it moves it where it is used. It is unsafe: it
    changes where the computation runs, and the device expression is copied
    from the model's line, which may not be in scope or may not be what the
    author meant for this tensor.
    """

    code = "TL401"
    name = "missing-to-device"
    message = "A tensor from a DataLoader reaches a model on another device"
    # DataLoader, train_loader, testloader... the rarer of the two things the
    # rule needs (a loader and a move), so fewer files are parsed for it.
    triggers = ("oader",)
    confirmable = True

    VALID = [
        # Both moved.
        "model = Net().to(device)\nfor x, y in train_loader:\n    x, y = x.to(device), y.to(device)\n    loss = criterion(model(x), y)\n",
        # Moved with a comprehension and non_blocking.
        "model = Net().cuda()\nfor batch in train_loader:\n    x, y = [t.to('cuda', non_blocking=True) for t in batch]\n    loss = criterion(model(x), y)\n",
        # A helper of the file moves the batch.
        "def to_device(batch, device):\n    return [t.to(device) for t in batch]\n\nmodel = Net().to(device)\nfor batch in train_loader:\n    x, y = to_device(batch, device)\n    loss = criterion(model(x), y)\n",
        # The model never leaves the CPU.
        "model = Net()\nfor x, y in train_loader:\n    loss = criterion(model(x), y)\n",
        # Moved to the CPU explicitly.
        "import torch\ndevice = torch.device('cpu')\nmodel = Net().to(device)\nfor x, y in train_loader:\n    loss = criterion(model(x), y)\n",
        # The model arrives as a parameter: where it lives is the caller's business.
        "def evaluate(model, loader):\n    for x, y in loader:\n        print(model(x).argmax(1) == y)\n",
        # Moved to the model's own device.
        "model = Net().to(device)\nfor x, y in train_loader:\n    out = model(x.to(next(model.parameters()).device))\n",
        # A DataLoader over tensors already on the device.
        "import torch\nfrom torch.utils.data import DataLoader, TensorDataset\nX = torch.randn(64, 3).to(device)\nY = torch.randn(64, 1).to(device)\nloader = DataLoader(TensorDataset(X, Y), batch_size=8)\nmodel = Net().to(device)\nfor x, y in loader:\n    loss = criterion(model(x), y)\n",
        # DataParallel scatters CPU inputs itself; the labels are moved.
        "import torch.nn as nn\nmodel = nn.DataParallel(Net()).cuda()\nfor x, y in train_loader:\n    loss = criterion(model(x), y.cuda())\n",
        # Lengths stay on the CPU on purpose.
        "model = Tagger().to(device)\nfor tokens, lengths in train_loader:\n    out = model(tokens.to(device), lengths)\n",
    ]
    INVALID = [
        Invalid(
            "model = Net().to(device)\nfor images, labels in train_loader:\n    outputs = model(images)\n",
            "model = Net().to(device)\nfor images, labels in train_loader:\n    images = images.to(device)\n    outputs = model(images)\n",
        ),
        # Inputs moved, labels forgotten: the loss gets a GPU output and CPU labels.
        Invalid(
            "model = Net().cuda()\nfor i, (x, y) in enumerate(train_loader):\n    out = model(x.cuda())\n    loss = criterion(out, y)\n",
            "model = Net().cuda()\nfor i, (x, y) in enumerate(train_loader):\n    y = y.cuda()\n    out = model(x.cuda())\n    loss = criterion(out, y)\n",
        ),
        # Unpacked from the batch: moved right after the unpacking.
        Invalid(
            "def train(loader, device):\n    model = Net()\n    model.to(device)\n    for batch in loader:\n        x, y = batch\n        loss = loss_fn(model(x.view(-1, 784)), y.to(device))\n",
            "def train(loader, device):\n    model = Net()\n    model.to(device)\n    for batch in loader:\n        x, y = batch\n        x = x.to(device)\n        loss = loss_fn(model(x.view(-1, 784)), y.to(device))\n",
        ),
        # Indexing the batch at the call: moved where it is used.
        Invalid(
            "import torch\nfrom torch.utils.data import DataLoader\ndevice = torch.device('cuda' if torch.cuda.is_available() else 'cpu')\nnet = Net().to(device)\nloader = DataLoader(ds, batch_size=4)\nfor data in loader:\n    out = net(data[0])\n",
            "import torch\nfrom torch.utils.data import DataLoader\ndevice = torch.device('cuda' if torch.cuda.is_available() else 'cpu')\nnet = Net().to(device)\nloader = DataLoader(ds, batch_size=4)\nfor data in loader:\n    out = net(data[0].to(device))\n",
        ),
        # A quick look at one batch after training.
        Invalid(
            "model = Net().to(device)\nimages, labels = next(iter(test_loader))\npreds = model(images).argmax(1)\n",
            "model = Net().to(device)\nimages, labels = next(iter(test_loader))\nimages = images.to(device)\npreds = model(images).argmax(1)\n",
        ),
        # The module-level model used inside a function.
        Invalid(
            "model = Net().to(device)\n\ndef evaluate(val_loader):\n    for x, y in val_loader:\n        print(model(x))\n",
            "model = Net().to(device)\n\ndef evaluate(val_loader):\n    for x, y in val_loader:\n        x = x.to(device)\n        print(model(x))\n",
        ),
    ]

    def __init__(self, context) -> None:
        super().__init__(context)
        src = context.source
        self._off = ".to(" not in src and ".cuda(" not in src
        self._classes: dict[str, cst.ClassDef] = {}
        self._class_memo: dict[tuple[str, str], bool] = {}
        self._flagged: set[tuple[str, int]] = set()
        # (function, its enclosing functions, the state of the scope it is defined in)
        self._pending: deque[tuple[cst.FunctionDef, tuple[cst.FunctionDef, ...], _State]] = deque()
        self._functions: list[cst.FunctionDef] = []
        self._defs: dict[str, cst.FunctionDef] = {}
        self._drawing: set[int] = set()

    # -- what the traversal records: classes, and which functions draw batches --
    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        if not self._off:
            self._classes.setdefault(node.name.value, node)

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        if not self._off:
            self._functions.append(node)
            self._defs.setdefault(node.name.value, node)

    def leave_FunctionDef(self, node: cst.FunctionDef) -> None:
        if not self._off:
            self._functions.pop()

    def visit_For(self, node: cst.For) -> None:
        self._mark_drawing()

    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        if (isinstance(func, cst.Name) and func.value == "next") or (
            isinstance(func, cst.Attribute) and func.attr.value in ("next", "__next__")
        ):
            self._mark_drawing()

    def _mark_drawing(self) -> None:
        # Only functions with a loop or a next() can draw batches; the enclosing
        # functions are walked too, since that is how nested ones are reached.
        if self._functions and id(self._functions[-1]) not in self._drawing:
            self._drawing.update(id(f) for f in self._functions)

    def leave_Module(self, node: cst.Module) -> None:
        if self._off:
            return
        module_state = _State(None, None)
        self._block(node.body, module_state, ())
        while self._pending:
            func, chain, outer = self._pending.popleft()
            if id(func) not in self._drawing:
                continue
            names = self.context.names
            for f in (*chain, func):
                names.push_function(f)
            try:
                self._function(func, chain, outer)
            finally:
                for _ in (*chain, func):
                    names.pop_function()

    def _function(self, func: cst.FunctionDef, chain: tuple[cst.FunctionDef, ...], outer: _State) -> None:
        state = _State(outer, frozenset(function_scope(func).bindings))
        p = func.params
        for param in (*p.posonly_params, *p.params, *p.kwonly_params):
            state.values[param.name.value] = _PARAM
        body = func.body
        if isinstance(body, cst.IndentedBlock):
            self._block(body.body, state, (*chain, func))

    # -- statements, in order --
    def _block(self, stmts, state: _State, chain: tuple[cst.FunctionDef, ...]) -> None:
        for stmt in stmts:
            if isinstance(stmt, cst.SimpleStatementLine):
                for small in stmt.body:
                    self._small(small, stmt, state)
            elif isinstance(stmt, cst.For):
                self._for(stmt, state, chain)
            elif isinstance(stmt, cst.FunctionDef):
                self._pending.append((stmt, chain, state))
            elif isinstance(stmt, cst.ClassDef):
                self._class_body(stmt, chain, state)
            else:
                for suite in _suites(stmt):
                    self._suite(suite, state, chain)

    def _suite(self, suite: cst.BaseSuite, state: _State, chain) -> None:
        if isinstance(suite, cst.IndentedBlock):
            self._block(suite.body, state, chain)
        elif isinstance(suite, cst.SimpleStatementSuite):
            for small in suite.body:
                self._small(small, None, state)

    def _class_body(self, cls: cst.ClassDef, chain, state: _State) -> None:
        body = cls.body
        if not isinstance(body, cst.IndentedBlock):
            return
        for stmt in body.body:
            if isinstance(stmt, cst.FunctionDef):
                # Methods see the enclosing scope, not the class body's names.
                self._pending.append((stmt, chain, state))
            elif isinstance(stmt, cst.ClassDef):
                self._class_body(stmt, chain, state)

    def _for(self, stmt: cst.For, state: _State, chain) -> None:
        if state.kinds:
            for call in calls_in(stmt.iter):
                self._check(call, state)
        source = self._loop_source(stmt.iter, stmt.target, state)
        for name in target_names(stmt.target):
            self._forget(name, state)
        if source is not None:
            loader, pattern = source
            for name in _unstarred_names(pattern):
                state.kinds[name] = _Batch(loader, name, stmt)
        self._suite(stmt.body, state, chain)
        if stmt.orelse is not None:
            self._suite(stmt.orelse.body, state, chain)

    def _small(self, stmt: cst.BaseSmallStatement, line: cst.SimpleStatementLine | None, state: _State) -> None:
        if state.kinds:
            for call in calls_in(stmt):
                self._check(call, state)
        if isinstance(stmt, cst.Assign):
            for target in stmt.targets:
                self._assign(target.target, stmt.value, line, state)
        elif isinstance(stmt, cst.AnnAssign) and stmt.value is not None:
            self._assign(stmt.target, stmt.value, line, state)
        elif isinstance(stmt, cst.Expr) and isinstance(stmt.value, cst.Call):
            self._bare_call(stmt.value, state)
        elif isinstance(stmt, cst.Del):
            for name in target_names(stmt.target):
                self._forget(name, state)

    def _forget(self, name: str, state: _State) -> None:
        state.kinds.pop(name, None)
        state.moves.pop(name, None)
        state.values[name] = _UNKNOWN

    def _assign(self, target: cst.BaseExpression, value: cst.BaseExpression, line, state: _State) -> None:
        if isinstance(target, (cst.Tuple, cst.List)):
            if isinstance(value, (cst.Tuple, cst.List)) and len(value.elements) == len(target.elements):
                if not any(isinstance(e, cst.StarredElement) for e in (*value.elements, *target.elements)):
                    kinds = [self._kind(e.value, state) for e in value.elements]
                    for t, v, k in zip(target.elements, value.elements, kinds):
                        self._assign_one(t.value, v.value, k, line, state)
                    return
            kind = self._kind(value, state)
            starred = set(target_names(target)) - set(_unstarred_names(target))
            for name in target_names(target):
                self._forget(name, state)
                if name in starred:
                    continue
                if isinstance(kind, _Batch):
                    state.kinds[name] = _Batch(kind.loader, name, line)
                elif isinstance(kind, _Output):
                    state.kinds[name] = kind
            return
        self._assign_one(target, value, self._kind(value, state), line, state)

    def _assign_one(self, target, value, kind, line, state: _State) -> None:
        if isinstance(target, (cst.Tuple, cst.List, cst.StarredElement)):
            self._assign(target, value, line, state)
            return
        dotted = dotted_name(target)
        if dotted is None:
            return
        move = self._move_of_value(value, dotted, state)
        if isinstance(target, cst.Name):
            self._forget(dotted, state)
            state.values[dotted] = value
            if isinstance(kind, _Batch):
                state.kinds[dotted] = _Batch(kind.loader, dotted, line)
            elif isinstance(kind, _Output):
                state.kinds[dotted] = kind
        if move is not None:
            state.moves[dotted] = move
        else:
            state.moves.pop(dotted, None)

    def _bare_call(self, call: cst.Call, state: _State) -> None:
        func = call.func
        if not isinstance(func, cst.Attribute):
            return
        receiver = dotted_name(func.value)
        if receiver is None:
            return
        method = func.attr.value
        if receiver in state.kinds:
            # ``x.to(device)`` as a statement: moves nothing for tensors, but some
            # batch objects move in place. Unknown, so forget the tensor.
            if method in ("to", "cuda"):
                state.kinds.pop(receiver, None)
            return
        if method in ("to", "cuda"):
            move = self._move_from_call(call, receiver, state)
            if move == "cpu":
                state.moves.pop(receiver, None)
            elif isinstance(move, _Move):
                state.moves[receiver] = move
        elif method == "cpu":
            state.moves.pop(receiver, None)

    # -- models --
    def _move_of_value(self, value: cst.BaseExpression, name: str, state: _State) -> _Move | None:
        if isinstance(value, cst.Call):
            func = value.func
            qual = self.context.qualname(func)
            if isinstance(func, cst.Attribute) and qual not in _PARALLEL and qual not in _TRANSPARENT_WRAPPERS:
                method = func.attr.value
                if method in ("to", "cuda"):
                    if isinstance(self._kind(func.value, state), _Batch):
                        return None
                    move = self._move_from_call(value, name, state)
                    if move == "dtype":
                        return self._move_of_value(func.value, name, state)
                    return move if isinstance(move, _Move) else None
                if method in _MODULE_SELF_METHODS:
                    inner = self._move_of_value(func.value, name, state)
                    return None if inner is None else _replace_model(inner, name)
                return None
            if qual in _PARALLEL or qual in _TRANSPARENT_WRAPPERS:
                first = next((a.value for a in value.args if a.keyword is None), None)
                inner = None if first is None else self._move_of_value(first, name, state)
                if inner is None:
                    return None
                inner = _replace_model(inner, name)
                if qual in _PARALLEL:
                    inner = dataclasses.replace(inner, moves_inputs=True)
                return inner
            return None
        dotted = dotted_name(value)
        if dotted is not None:
            found = self._lookup_move(dotted, state)
            return None if found is None else _replace_model(found, name)
        return None

    def _move_from_call(self, call: cst.Call, name: str, state: _State) -> "_Move | str | None":
        """A move for ``<receiver>.to(...)``/``.cuda(...)``; "cpu" / "dtype" when it is not one."""
        func = call.func
        assert isinstance(func, cst.Attribute)
        moves_inputs = self._forward_moves_inputs(func.value) or self._wraps_parallel(func.value)
        model_class = self._class_of(func.value, state)
        if any(a.star for a in call.args):
            return "dtype"  # .to(*args): cannot tell what it moves to
        if func.attr.value == "cuda":
            args = ", ".join(
                self.context.code(a.value) if a.keyword is None else f"{a.keyword.value}={self.context.code(a.value)}"
                for a in call.args
            )
            return _Move(name, call, None, args, moves_inputs, model_class)
        device = next((a.value for a in call.args if a.keyword is not None and a.keyword.value == "device"), None)
        if device is None:
            first = next((a.value for a in call.args if a.keyword is None), None)
            if first is None or is_dtype_expr(first, self.context.qualname):
                return "dtype"
            device = first
        if self._is_cpu(device, state, 0):
            return "cpu"
        return _Move(name, call, self.context.code(device), "", moves_inputs, model_class)

    def _class_of(self, expr: cst.BaseExpression, state: _State) -> str | None:
        """``Net`` for ``Net(...)``, ``Net(...).eval()`` or a name bound to one, when Net is a class of this file."""
        for _ in range(4):
            if isinstance(expr, cst.Name):
                value = self._lookup_value(expr.value, state)
                if not isinstance(value, cst.BaseExpression):
                    return None
                expr = value
            elif isinstance(expr, cst.Call) and isinstance(expr.func, cst.Attribute):
                expr = expr.func.value
            elif isinstance(expr, cst.Call) and isinstance(expr.func, cst.Name):
                name = expr.func.value
                return name if name in self._classes else None
            else:
                return None
        return None

    def _wraps_parallel(self, expr: cst.BaseExpression) -> bool:
        while isinstance(expr, cst.Call):
            if self.context.qualname(expr.func) in _PARALLEL:
                return True
            if not isinstance(expr.func, cst.Attribute):
                return False
            expr = expr.func.value
        return False

    def _forward_moves_inputs(self, expr: cst.BaseExpression) -> bool:
        """``Net(...)`` whose ``forward`` in this file moves one of its inputs itself."""
        while isinstance(expr, cst.Call) and isinstance(expr.func, cst.Attribute):
            expr = expr.func.value
        if not (isinstance(expr, cst.Call) and isinstance(expr.func, cst.Name)):
            return False
        return self._class_moves(expr.func.value, "forward")

    def _class_moves(self, name: str, how: str) -> bool:
        """how="forward": the class's forward() moves a parameter; how="any": the class
        or function of that name mentions a device at all."""
        key = (name, how)
        if key in self._class_memo:
            return self._class_memo[key]
        cls = self._classes.get(name)
        result = False
        if how == "any":
            # A class or function of this file that might put data on a device itself.
            defined = cls if cls is not None else self._defs.get(name)
            if defined is not None:
                code = self.context.code(defined)
                result = ".to(" in code or ".cuda(" in code or "device" in code
        elif cls is not None:
            result = any(_forward_moves_param(f) for f in _methods(cls, "forward"))
        self._class_memo[key] = result
        return result

    def _is_cpu(self, expr: cst.BaseExpression, state: _State, depth: int) -> bool:
        text = literal_string(expr)
        if text is not None:
            return text.strip().lower().startswith("cpu")
        if isinstance(expr, cst.Call) and self.context.qualname(expr.func) == "torch.device" and expr.args:
            return self._is_cpu(expr.args[0].value, state, depth + 1)
        if isinstance(expr, cst.Name) and depth < 4:
            value = self._lookup_value(expr.value, state)
            if isinstance(value, cst.BaseExpression):
                return self._is_cpu(value, state, depth + 1)
        return False

    def _lookup_move(self, dotted: str, state: _State) -> _Move | None:
        root = dotted.split(".", 1)[0]
        if dotted in state.moves:
            return state.moves[dotted]
        scope = state
        while scope.local is not None:
            if root in scope.local or scope.outer is None:
                return None
            scope = scope.outer
            if dotted in scope.moves and scope.local is None:
                return scope.moves[dotted]
        return None

    def _lookup_value(self, name: str, state: _State) -> object | None:
        """The last value bound to ``name`` that this scope can see; None when unbound."""
        scope: _State | None = state
        while scope is not None:
            if name in scope.values:
                return scope.values[name]
            if scope.local is not None and name in scope.local:
                return _UNKNOWN
            if scope.local is None and name in self.context.names.module_scope.bindings:
                return _UNKNOWN
            scope = scope.outer
        return None

    # -- loaders and batches --
    def _loop_source(self, it: cst.BaseExpression, target: cst.BaseExpression, state: _State):
        pattern = target
        while isinstance(it, cst.Call) and it.args:
            qual = self.context.qualname(it.func) or ""
            if qual == "builtins.enumerate":
                if not (isinstance(pattern, (cst.Tuple, cst.List)) and len(pattern.elements) == 2):
                    return None
                pattern = pattern.elements[1].value
            elif not (qual == "builtins.iter" or qual.split(".", 1)[0] == "tqdm"):
                break
            it = it.args[0].value
        loader = self._loader(it, state)
        return None if loader is None else (loader, pattern)

    def _loader(self, expr: cst.BaseExpression, state: _State) -> str | None:
        if isinstance(expr, cst.Call):
            if self.context.qualname(expr.func) in _DATALOADERS and self._yields_cpu(expr, state):
                return "DataLoader(...)"
            return None
        if isinstance(expr, cst.Subscript):
            # dataloaders[phase]: a dict of loaders
            base = dotted_name(expr.value)
            if base is None or "loader" not in base.lower():
                return None
            value = self._lookup_value(base, state) if "." not in base else None
            if value is None:
                return self.context.code(expr)
            if isinstance(value, cst.Dict) and value.elements and all(
                isinstance(e, cst.DictElement) and isinstance(e.value, cst.Call) and self._loader(e.value, state)
                for e in value.elements
            ):
                return self.context.code(expr)
            return None
        dotted = dotted_name(expr)
        if dotted is None:
            return None
        if "." in dotted:
            # self.train_loader: nothing in this scope says otherwise
            return dotted if "loader" in last_part(dotted).lower() else None
        value = self._lookup_value(dotted, state)
        if isinstance(value, cst.Call):
            if self.context.qualname(value.func) in _DATALOADERS and self._yields_cpu(value, state):
                return dotted
            return None
        if value is None or value is _PARAM:
            return dotted if "loader" in dotted.lower() else None
        return None

    def _yields_cpu(self, call: cst.Call, state: _State) -> bool:
        """Does this DataLoader hand out CPU tensors, as far as the file shows?"""
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
        if isinstance(dataset, cst.Name):
            value = self._lookup_value(dataset.value, state)
            dataset = value if isinstance(value, cst.BaseExpression) else dataset
        if isinstance(dataset, cst.Call):
            qual = self.context.qualname(dataset.func) or ""
            if qual.endswith("TensorDataset"):
                return not any(self._on_device(a.value, state, 0) for a in dataset.args)
            if isinstance(dataset.func, cst.Name) and self._class_moves(dataset.func.value, "any"):
                return False
        return True

    def _on_device(self, expr: cst.BaseExpression, state: _State, depth: int) -> bool:
        if depth > 4:
            return True
        if isinstance(expr, cst.Call):
            func = expr.func
            for arg in expr.args:
                if arg.keyword is not None and arg.keyword.value == "device":
                    return not self._is_cpu(arg.value, state, 0)
            if isinstance(func, cst.Attribute):
                if func.attr.value == "cuda":
                    return True
                if func.attr.value == "to":
                    first = next((a.value for a in expr.args), None)
                    if first is not None and not is_dtype_expr(first, self.context.qualname):
                        return not self._is_cpu(first, state, 0)
                if func.attr.value in DERIVING_METHODS or func.attr.value == "to":
                    return self._on_device(func.value, state, depth + 1)
            # torch.randn(...), torch.tensor(...) without device=: the CPU
            return False
        if isinstance(expr, cst.Name):
            value = self._lookup_value(expr.value, state)
            if isinstance(value, cst.BaseExpression):
                return self._on_device(value, state, depth + 1)
            return True  # a parameter, something unknown or undefined here: cannot tell
        return False

    def _kind(self, expr: cst.BaseExpression, state: _State) -> _Kind | None:
        if isinstance(expr, cst.Name):
            return state.kinds.get(expr.value)
        if isinstance(expr, cst.Subscript):
            inner = self._kind(expr.value, state)
            if isinstance(inner, _Batch):
                return _Batch(inner.loader)
            return inner
        if isinstance(expr, cst.Attribute):
            if expr.attr.value in _NOT_TENSOR_ATTRS:
                return None
            inner = self._kind(expr.value, state)
            return _Batch(inner.loader) if isinstance(inner, _Batch) else inner
        if isinstance(expr, (cst.UnaryOperation,)):
            return self._kind(expr.expression, state)
        if isinstance(expr, cst.BinaryOperation):
            left, right = expr.left, expr.right
            if isinstance(right, (cst.Integer, cst.Float)):
                return self._kind(left, state)
            if isinstance(left, (cst.Integer, cst.Float)):
                return self._kind(right, state)
            return None
        if isinstance(expr, cst.Call):
            return self._call_kind(expr, state)
        return None

    def _call_kind(self, call: cst.Call, state: _State) -> _Kind | None:
        func = call.func
        if isinstance(func, cst.Attribute):
            method = func.attr.value
            if method == "to" and call.args:
                if all(a.keyword is not None and a.keyword.value == "dtype" for a in call.args) or (
                    call.args[0].keyword is None and is_dtype_expr(call.args[0].value, self.context.qualname)
                ):
                    return self._kind(func.value, state)
                return None
            if method in DERIVING_METHODS:
                return self._kind(func.value, state)
            if method in ("next", "__next__") and not call.args:
                return self._draw(func.value, state)
        qual = self.context.qualname(func)
        if qual == "builtins.next" and call.args:
            return self._draw(call.args[0].value, state)
        if qual == "torch.autograd.Variable" and call.args:
            return self._kind(call.args[0].value, state)
        dotted = dotted_name(func)
        if dotted is not None:
            move = self._lookup_move(dotted, state)
            if move is not None:
                return _Output(move)
        return None

    def _draw(self, it: cst.BaseExpression, state: _State) -> _Batch | None:
        """``next(iter(loader))`` / ``next(it)`` with ``it = iter(loader)``."""
        if isinstance(it, cst.Name):
            value = self._lookup_value(it.value, state)
            if not isinstance(value, cst.BaseExpression):
                return None
            it = value
        if isinstance(it, cst.Call) and len(it.args) == 1:
            func = it.func
            is_iter = self.context.qualname(func) == "builtins.iter" or (
                isinstance(func, cst.Attribute) and func.attr.value == "__iter__"
            )
            if is_iter:
                loader = self._loader(it.args[0].value, state)
                if loader is not None:
                    return _Batch(loader)
        return None

    # -- uses --
    def _check(self, call: cst.Call, state: _State) -> None:
        callee = dotted_name(call.func)
        is_loss = self._is_loss(call.func, callee, state)
        if callee is not None and not is_loss:
            move = self._lookup_move(callee, state)
            if move is not None:
                if not move.moves_inputs:
                    for arg in call.args:
                        kind = self._kind(arg.value, state)
                        if isinstance(kind, _Batch):
                            self._flag(arg, kind, move, callee, False)
                return
        if is_loss:
            outputs = [k for a in call.args if isinstance(k := self._kind(a.value, state), _Output)]
            if outputs:
                for arg in call.args:
                    kind = self._kind(arg.value, state)
                    if isinstance(kind, _Batch):
                        self._flag(arg, kind, outputs[0].move, callee or self.context.code(call.func), True)

    def _is_loss(self, func: cst.BaseExpression, callee: str | None, state: _State) -> bool:
        qual = self.context.qualname(func)
        if qual is not None:
            return is_loss_function_qualname(qual) and "ctc" not in qual.lower()
        if callee is None:
            return False
        if "." not in callee:
            if self._class_moves(callee, "any"):
                return False  # a loss function of this file that may move its arguments
            value = self._lookup_value(callee, state)
            while isinstance(value, cst.Call) and isinstance(value.func, cst.Attribute) and value.func.attr.value in ("to", "cuda"):
                value = value.func.value
            if isinstance(value, cst.Call):
                vq = self.context.qualname(value.func)
                if is_loss_function_qualname(vq):
                    return "CTC" not in (vq or "")
                if isinstance(value.func, cst.Name) and self._class_moves(value.func.value, "any"):
                    return False
        return looks_like_loss_name(callee) and "ctc" not in callee.lower()

    def _flag(self, arg: cst.Arg, batch: _Batch, move: _Move, callee: str, is_loss: bool) -> None:
        expr = arg.value
        tensor = batch.root or self.context.code(expr)
        if _CPU_BY_DESIGN.search(tensor):
            return
        key = (tensor, id(batch.site) if batch.site is not None else id(expr))
        if key in self._flagged:
            return
        self._flagged.add(key)
        pos = positions(self.context)
        line = pos.line(move.node)
        where = f"`{move.device}`" if move.device is not None else "the GPU"
        moved = f"moved with `{move.call_text}` on line {line}"
        if is_loss:
            message = (
                f"`{tensor}` from `{batch.loader}` reaches `{callee}` together with the output of "
                f"`{move.model}` ({moved}) without being moved to {where}"
            )
        else:
            message = f"`{tensor}` from `{batch.loader}` reaches `{move.model}` ({moved}) without being moved to {where}"
        self.report(
            expr,
            message,
            fix=self._fix(arg, batch, move, tensor, pos),
            related=[RelatedSpec(move.node, f"`{move.model}` is moved to {where} here")],
            data=self._data(move, tensor),
        )

    @staticmethod
    def _data(move: _Move, tensor: str) -> dict[str, str]:
        data = {"device": move.label, "tensor": tensor, "model": move.model}
        if move.model_class is not None:
            data["model_class"] = move.model_class
        return data

    def _fix(self, arg: cst.Arg, batch: _Batch, move: _Move, tensor: str, pos) -> FixSpec | None:
        call = move.call_text
        root, site = batch.root, batch.site
        star = arg.star
        if root is not None and site is not None:
            if star == "**":
                text = f"{root} = {{k: v{call} for k, v in {root}.items()}}"
            elif star == "*":
                text = f"{root} = [t{call} for t in {root}]"
            else:
                text = f"{root} = {root}{call}"
            if isinstance(site, cst.For):
                if isinstance(site.body, cst.IndentedBlock) and site.body.body:
                    first = site.body.body[0]
                    op = InsertAtLine(pos.line(first), f"{pos.indent(first)}{text}\n")
                    return FixSpec(f"Move `{root}` to the model's device", (op,), "unsafe")
            elif isinstance(site, cst.SimpleStatementLine):
                op = InsertAtLine(pos.end_line(site) + 1, f"{pos.indent(site)}{text}\n")
                return FixSpec(f"Move `{root}` to the model's device", (op,), "unsafe")
        if star:
            return None
        expr = arg.value
        code = self.context.code(expr)
        if not isinstance(expr, (cst.Name, cst.Attribute, cst.Subscript, cst.Call)):
            code = f"({code})"
        return FixSpec(f"Move `{tensor}` to the model's device", (Replace(expr, f"{code}{call}"),), "unsafe")


def _unstarred_names(target: cst.BaseExpression):
    """Names a target binds to one element each (``x, *rest`` -> ``x``)."""
    if isinstance(target, cst.Name):
        yield target.value
    elif isinstance(target, (cst.Tuple, cst.List)):
        for el in target.elements:
            if not isinstance(el, cst.StarredElement):
                yield from _unstarred_names(el.value)


def _replace_model(move: _Move, name: str) -> _Move:
    return dataclasses.replace(move, model=name)


def _suites(stmt: cst.CSTNode):
    """The blocks of a compound statement other than For/def/class."""
    for attr in ("body", "orelse", "finalbody"):
        child = getattr(stmt, attr, None)
        if isinstance(child, cst.BaseSuite):
            yield child
        elif isinstance(child, (cst.Else, cst.Finally)):
            yield child.body
        elif isinstance(child, cst.If):
            yield from _suites(child)
    for handler in getattr(stmt, "handlers", ()) or ():
        yield handler.body
    for case in getattr(stmt, "cases", ()) or ():
        yield case.body


def _methods(cls: cst.ClassDef, name: str):
    body = cls.body
    if isinstance(body, cst.IndentedBlock):
        for stmt in body.body:
            if isinstance(stmt, cst.FunctionDef) and stmt.name.value == name:
                yield stmt


def _forward_moves_param(func: cst.FunctionDef) -> bool:
    params = {p.name.value for p in func.params.params} - {"self"}
    for call in calls_in(func.body):
        f = call.func
        if isinstance(f, cst.Attribute) and f.attr.value in ("to", "cuda"):
            root = dotted_name(f.value)
            if root is not None and root.split(".", 1)[0] in params:
                return True
    return False
