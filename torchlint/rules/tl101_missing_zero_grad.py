from __future__ import annotations

from dataclasses import dataclass, field

import libcst as cst

from torchlint.analysis.positions import positions
from torchlint.analysis.training import (
    dotted_name,
    is_scheduler_qualname,
    is_torch_optimizer_qualname,
    last_part,
    looks_like_optimizer_name,
)
from torchlint.rules.base import FixSpec, InsertAtLine, Invalid, RelatedSpec, Rule

# Imported helpers from these packages never clear a model's gradients; a call to
# a function imported from anywhere else might (it is code we cannot see).
_SAFE_ROOTS = frozenset(
    {
        "argparse", "builtins", "collections", "contextlib", "copy", "csv", "dataclasses", "datetime",
        "einops", "functools", "gc", "glob", "itertools", "json", "logging", "math", "matplotlib", "mlflow",
        "numpy", "operator", "os", "pandas", "pathlib", "pickle", "PIL", "random", "re", "scipy", "shutil",
        "sklearn", "statistics", "string", "sys", "tensorboardX", "time", "torch", "torchaudio", "torchtext",
        "torchvision", "tqdm", "typing", "wandb", "warnings",
    }
)
# Methods that receive an optimizer without touching its gradients' lifetime.
_SAFE_OPTIMIZER_CONSUMERS = frozenset(
    {"unscale_", "update", "state_dict", "load_state_dict", "add_param_group", "append", "save", "register"}
)


@dataclass
class _CallDesc:
    """A call that might clear gradients out of sight, resolved at the end of the file."""

    kind: str  # "name" (f()), "self" (self.f()), "module" (imported_module.f()), "attr" (obj.f())
    name: str
    qual: str | None
    bound: bool
    passes_optimizer: bool


@dataclass
class _Loop:
    node: cst.For | cst.While
    backward: list[cst.Call] = field(default_factory=list)
    # zero_grad() calls: (call, dotted receiver or None)
    clears: list[tuple[cst.Call, str | None]] = field(default_factory=list)
    # p.grad = None, p.grad.zero_(), del p.grad ...
    other_clear: bool = False
    calls: list[_CallDesc] = field(default_factory=list)


@dataclass(eq=False)
class _Frame:
    parent: "_Frame | None"
    params: frozenset[str] = frozenset()
    loops: list[_Loop] = field(default_factory=list)
    direct_clear: bool = False
    calls: list[_CallDesc] = field(default_factory=list)
    # name -> [(value, qualified name of the called function when the value is a call)]
    bindings: dict[str, list[tuple[cst.BaseExpression, str | None]]] = field(default_factory=dict)


@dataclass
class _Step:
    call: cst.Call
    optimizer: str
    frame: _Frame
    loops: tuple[_Loop, ...]


class MissingZeroGrad(Rule):
    """
    ## What it does
    Checks for training loops that call `backward()` and `optimizer.step()` on
    every iteration but never clear the gradients inside the loop.

    The finding is reported on the `step()` call. Gradients count as cleared by
    `optimizer.zero_grad()` (any arguments), `model.zero_grad()`, `p.grad = None`,
    `p.grad.zero_()` or `del p.grad` anywhere in the loop, including under an
    `if` (gradient accumulation), in a nested loop, or in a function of the same
    file that the loop calls. A call into code the rule cannot see (a function
    imported from another module, an inherited method) counts as "might clear":
    the rule stays silent. Steps driven by a closure (`optimizer.step(closure)`,
    LBFGS) are left alone, as are `.step()` calls on objects that are not
    optimizers (schedulers): an optimizer is a `torch.optim` construction or a
    name such as `optimizer`, `opt`, `optim_g`, `d_optimizer`. With two
    optimizers (GANs), a loop that clears only the other one is flagged when
    both are built in the file from different models' parameters.

    ## Why is this bad?
    `backward()` adds to `.grad`; it never overwrites it. Without clearing, the
    step at iteration *n* uses the sum of the gradients of all *n* batches so
    far, so the effective learning rate grows every step and training diverges
    or silently goes wrong. Clearing once before the loop, or in an outer
    (epoch) loop, is not enough.

    ## Example
    ```python
    optimizer.zero_grad()
    for inputs, labels in trainloader:
        loss = criterion(model(inputs), labels)
        loss.backward()
        optimizer.step()
    ```

    ## Use instead
    ```python
    for inputs, labels in trainloader:
        optimizer.zero_grad()
        loss = criterion(model(inputs), labels)
        loss.backward()
        optimizer.step()
    ```

    ## Fix safety
    The fix inserts `optimizer.zero_grad()` as the first statement of the loop
    body (offered when the optimizer is a plain or dotted name). It is unsafe:
    it changes the numbers the loop computes, which is the point, but if the
    accumulation was intended (gradient accumulation done some other way the rule
    could not see) the fix changes the training.
    """

    code = "TL101"
    name = "missing-zero-grad"
    message = "`{step}` runs in a loop that never clears the gradients: `backward()` adds to `.grad`, so each step uses the sum of all earlier batches' gradients"
    # Every backward call is spelled ``.backward(`` (``loss.backward()``,
    # ``torch.autograd.backward(...)``, ``accelerator.backward(loss)``); plain
    # "backward" would also match every ``def backward(ctx, ...)``.
    triggers = (".backward(",)
    confirmable = True

    VALID = [
        # Cleared at the end of the body, with set_to_none.
        "for x, y in loader:\n    loss = loss_fn(model(x), y)\n    loss.backward()\n    optimizer.step()\n    optimizer.zero_grad(set_to_none=True)\n",
        # The model clears its own parameters.
        "for x, y in loader:\n    model.zero_grad()\n    loss_fn(model(x), y).backward()\n    optimizer.step()\n",
        # Gradient accumulation: step and clear every N batches.
        "for i, (x, y) in enumerate(loader):\n    (loss_fn(model(x), y) / 4).backward()\n    if (i + 1) % 4 == 0:\n        optimizer.step()\n        optimizer.zero_grad()\n",
        # Manual clearing of every parameter.
        "for x, y in loader:\n    for p in model.parameters():\n        p.grad = None\n    loss_fn(model(x), y).backward()\n    opt.step()\n",
        # A helper of this file clears them.
        "def reset(opt):\n    opt.zero_grad()\n\nfor x, y in loader:\n    reset(optimizer)\n    loss_fn(model(x), y).backward()\n    optimizer.step()\n",
        # LBFGS: the closure clears, step() calls it.
        "for x, y in loader:\n    def closure():\n        optimizer.zero_grad()\n        loss = loss_fn(model(x), y)\n        loss.backward()\n        return loss\n    optimizer.step(closure)\n",
        # A scheduler's step is not an optimizer step.
        "optimizer.zero_grad()\nfor epoch in range(10):\n    loss_fn(model(x), y).backward()\n    scheduler.step()\n",
        # A helper imported from another module: unknown, so silent.
        "from trainlib import after_step\nfor x, y in loader:\n    loss_fn(model(x), y).backward()\n    optimizer.step()\n    after_step(model)\n",
        # AMP: cleared, then scaler.step(optimizer).
        "for x, y in loader:\n    optimizer.zero_grad()\n    scaler.scale(loss_fn(model(x), y)).backward()\n    scaler.step(optimizer)\n    scaler.update()\n",
        # GAN loop clearing both optimizers.
        "import torch\nopt_g = torch.optim.Adam(gen.parameters())\nopt_d = torch.optim.Adam(disc.parameters())\nfor real in loader:\n    opt_d.zero_grad()\n    d_loss(real).backward()\n    opt_d.step()\n    opt_g.zero_grad()\n    g_loss().backward()\n    opt_g.step()\n",
    ]
    INVALID = [
        Invalid(
            "for x, y in loader:\n    loss = loss_fn(model(x), y)\n    loss.backward()\n    optimizer.step()\n",
            "for x, y in loader:\n    optimizer.zero_grad()\n    loss = loss_fn(model(x), y)\n    loss.backward()\n    optimizer.step()\n",
        ),
        # Cleared once, before the loop.
        Invalid(
            "def train(model, loader, opt):\n    opt.zero_grad()\n    for x, y in loader:\n        model(x).sum().backward()\n        opt.step()\n",
            "def train(model, loader, opt):\n    opt.zero_grad()\n    for x, y in loader:\n        opt.zero_grad()\n        model(x).sum().backward()\n        opt.step()\n",
        ),
        # Cleared in the epoch loop only: the batch loop accumulates.
        Invalid(
            "for epoch in range(5):\n    optimizer.zero_grad()\n    for x, y in loader:\n        loss_fn(model(x), y).backward()\n        optimizer.step()\n",
            "for epoch in range(5):\n    optimizer.zero_grad()\n    for x, y in loader:\n        optimizer.zero_grad()\n        loss_fn(model(x), y).backward()\n        optimizer.step()\n",
        ),
        # AMP with a GradScaler: the step is scaler.step(optimizer).
        Invalid(
            "while step < total:\n    scaler.scale(loss_fn(model(x), y)).backward()\n    scaler.step(optimizer)\n    scaler.update()\n    step += 1\n",
            "while step < total:\n    optimizer.zero_grad()\n    scaler.scale(loss_fn(model(x), y)).backward()\n    scaler.step(optimizer)\n    scaler.update()\n    step += 1\n",
        ),
        # GAN: the generator's optimizer is never cleared.
        Invalid(
            "import torch\nopt_g = torch.optim.Adam(gen.parameters())\nopt_d = torch.optim.Adam(disc.parameters())\nfor real in loader:\n    opt_d.zero_grad()\n    d_loss(real).backward()\n    opt_d.step()\n    g_loss().backward()\n    opt_g.step()\n",
            "import torch\nopt_g = torch.optim.Adam(gen.parameters())\nopt_d = torch.optim.Adam(disc.parameters())\nfor real in loader:\n    opt_g.zero_grad()\n    opt_d.zero_grad()\n    d_loss(real).backward()\n    opt_d.step()\n    g_loss().backward()\n    opt_g.step()\n",
        ),
        # A name that is not optimizer-like but built from torch.optim.
        Invalid(
            "import torch.optim as optim\nsgd = optim.SGD(net.parameters(), lr=0.1)\nfor epoch in range(100):\n    loss = ((net(x) - y) ** 2).mean()\n    loss.backward()\n    sgd.step()\n",
            "import torch.optim as optim\nsgd = optim.SGD(net.parameters(), lr=0.1)\nfor epoch in range(100):\n    sgd.zero_grad()\n    loss = ((net(x) - y) ** 2).mean()\n    loss.backward()\n    sgd.step()\n",
        ),
    ]

    def __init__(self, context) -> None:
        super().__init__(context)
        # triggers are any-of; the rule also needs a step.
        self._off = "step(" not in context.source
        self._module_frame = _Frame(None)
        self._frames: list[_Frame] = [self._module_frame]
        self._defs: dict[str, list[_Frame]] = {}
        self._self_attrs: dict[str, list[tuple[cst.BaseExpression, str | None]]] = {}
        self._steps: list[_Step] = []
        # (call, receiver, frame, enclosing loops) for every zero_grad(): related info
        self._zero_grads: list[tuple[cst.Call, str | None, _Frame, tuple[_Loop, ...]]] = []
        self._clears_memo: dict[int, bool] = {}

    # -- scopes and loops --
    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        if self._off:
            return
        p = node.params
        params = frozenset(
            x.name.value
            for x in (*p.posonly_params, *p.params, *p.kwonly_params, p.star_arg, p.star_kwarg)
            if isinstance(x, cst.Param)
        )
        frame = _Frame(self._frames[-1], params)
        self._frames.append(frame)
        self._defs.setdefault(node.name.value, []).append(frame)

    def leave_FunctionDef(self, node: cst.FunctionDef) -> None:
        if self._off:
            return
        self._frames.pop()

    def visit_For(self, node: cst.For) -> None:
        if not self._off:
            self._frames[-1].loops.append(_Loop(node))

    def leave_For(self, node: cst.For) -> None:
        if not self._off:
            self._frames[-1].loops.pop()

    def visit_While(self, node: cst.While) -> None:
        if not self._off:
            self._frames[-1].loops.append(_Loop(node))

    def leave_While(self, node: cst.While) -> None:
        if not self._off:
            self._frames[-1].loops.pop()

    # -- bindings and clearing by assignment --
    def visit_Assign(self, node: cst.Assign) -> None:
        if self._off:
            return
        for target in node.targets:
            self._bind(target.target, node.value)

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        if not self._off and node.value is not None:
            self._bind(node.target, node.value)

    def visit_Del(self, node: cst.Del) -> None:
        if not self._off and _mentions_grad(node.target):
            self._mark_clear()

    def _bind(self, target: cst.BaseExpression, value: cst.BaseExpression) -> None:
        if isinstance(target, (cst.Tuple, cst.List)):
            if isinstance(value, (cst.Tuple, cst.List)) and len(value.elements) == len(target.elements):
                for t, v in zip(target.elements, value.elements):
                    self._bind(t.value, v.value)
            else:
                for el in target.elements:
                    self._bind(el.value, value)
            return
        if isinstance(target, cst.StarredElement):
            self._bind(target.value, value)
            return
        qual = self.context.qualname(value.func) if isinstance(value, cst.Call) else None
        if isinstance(target, cst.Name):
            self._frames[-1].bindings.setdefault(target.value, []).append((value, qual))
        elif isinstance(target, cst.Attribute):
            if target.attr.value == "grad" or _mentions_grad(target.value):
                self._mark_clear()
            elif isinstance(target.value, cst.Name) and target.value.value in ("self", "cls"):
                self._self_attrs.setdefault(target.attr.value, []).append((value, qual))

    def _mark_clear(self) -> None:
        frame = self._frames[-1]
        frame.direct_clear = True
        for loop in frame.loops:
            loop.other_clear = True

    # -- calls --
    def visit_Call(self, node: cst.Call) -> None:
        if self._off:
            return
        frame = self._frames[-1]
        func = node.func
        if isinstance(func, cst.Attribute):
            attr = func.attr.value
            if attr == "backward":
                for loop in frame.loops:
                    loop.backward.append(node)
                return
            if "zero_grad" in attr:
                receiver = dotted_name(func.value)
                frame.direct_clear = True
                for loop in frame.loops:
                    loop.clears.append((node, receiver))
                self._zero_grads.append((node, receiver, frame, tuple(frame.loops)))
                return
            if attr in ("zero_", "fill_", "detach_") and _mentions_grad(func.value):
                if attr != "detach_":
                    self._mark_clear()
                return
            if attr in ("step", "optimizer_step"):
                opt = self._stepped_optimizer(node, func)
                if opt is not None:
                    self._steps.append(_Step(node, opt, frame, tuple(frame.loops)))
                    return
                if attr == "step":
                    # An unknown .step(): a closure step (LBFGS) or not an optimizer at all.
                    return
        if frame is self._module_frame and not frame.loops:
            # Module-level code outside loops is neither a loop body nor a helper.
            return
        desc = self._describe(node)
        if desc is not None:
            frame.calls.append(desc)
            for loop in frame.loops:
                loop.calls.append(desc)

    def _stepped_optimizer(self, call: cst.Call, func: cst.Attribute) -> str | None:
        receiver = dotted_name(func.value)
        args = [a for a in call.args if a.keyword is None]
        if func.attr.value == "optimizer_step":
            # torch_xla's xm.optimizer_step(optimizer)
            return dotted_name(args[0].value) if args else None
        if not call.args:
            return receiver
        if receiver is None or not args:
            return None
        qual = self.context.qualname(func.value) or ""
        if "scaler" in last_part(receiver).lower() or qual.endswith("GradScaler"):
            return dotted_name(args[0].value)
        return None

    def _describe(self, call: cst.Call) -> _CallDesc | None:
        func = call.func
        passes_optimizer = any(
            isinstance(a.value, (cst.Name, cst.Attribute))
            and (d := dotted_name(a.value)) is not None
            and looks_like_optimizer_name(d)
            for a in call.args
        )
        if isinstance(func, cst.Name):
            name = func.value
            qual = self.context.qualname(func)
            return _CallDesc("name", name, qual, self.context.names.is_bound_locally(name), passes_optimizer)
        if isinstance(func, cst.Attribute):
            dotted = dotted_name(func)
            if dotted is None:
                return _CallDesc("attr", func.attr.value, None, True, passes_optimizer)
            root = dotted.split(".", 1)[0]
            if root in ("self", "cls") and dotted.count(".") == 1:
                return _CallDesc("self", func.attr.value, None, True, passes_optimizer)
            qual = self.context.qualname(func)
            if qual is not None and self.context.names.lookup(root) not in (None, f"builtins.{root}"):
                return _CallDesc("module", dotted, qual, True, passes_optimizer)
            return _CallDesc("attr", func.attr.value, None, True, passes_optimizer)
        return None

    # -- deciding --
    def leave_Module(self, node: cst.Module) -> None:
        if self._off:
            return
        reported: set[tuple[int, str]] = set()
        for step in self._steps:
            loop = next((lp for lp in reversed(step.loops) if lp.backward), None)
            if loop is None or (id(loop.node), step.optimizer) in reported:
                continue
            if not self._is_optimizer(step.optimizer, step.frame):
                continue
            others = self._uncleared(loop, step)
            if others is None:
                continue
            reported.add((id(loop.node), step.optimizer))
            self._report(step, loop, others)

    def _uncleared(self, loop: _Loop, step: _Step) -> list[str] | None:
        """None when the loop (may) clear this optimizer's gradients; else the optimizers it does clear."""
        if loop.other_clear or any(self._may_clear(d, set()) for d in loop.calls):
            return None
        receivers = [r for _, r in loop.clears]
        if not receivers:
            return []
        if step.optimizer in receivers or any(r is None for r in receivers):
            return None
        # Only other objects are cleared. Flag only the clear two-optimizer case:
        # every cleared object is an optimizer over a different model's parameters.
        mine = self._param_root(step.optimizer, step.frame)
        if mine is None:
            return None
        for r in receivers:
            assert r is not None
            if not self._is_optimizer(r, step.frame):
                return None
            theirs = self._param_root(r, step.frame)
            if theirs is None or _overlaps(mine, theirs):
                return None
        return sorted(set(receivers))  # type: ignore[arg-type]

    def _report(self, step: _Step, loop: _Loop, others: list[str]) -> None:
        pos = positions(self.context)
        opt = step.optimizer
        message = self.message.format(step=_call_text(step.call))
        if others:
            cleared = ", ".join(f"`{o}`" for o in others)
            message += f"; the loop clears only {cleared}, not `{opt}`"
        message += f"; call `{opt}.zero_grad()` in the loop"
        related = [RelatedSpec(loop.backward[0], "gradients are accumulated here on every iteration")]
        outside = [
            call
            for call, receiver, frame, loops in self._zero_grads
            if frame is step.frame and receiver == opt and all(lp is not loop for lp in loops)
        ]
        if outside:
            related.append(RelatedSpec(outside[0], f"`{opt}.zero_grad()` here is outside the loop: it runs once, not per step"))
        fix = None
        body = loop.node.body
        if isinstance(body, cst.IndentedBlock) and body.body:
            first = body.body[0]
            fix = FixSpec(
                f"Call `{opt}.zero_grad()` at the start of each iteration",
                (InsertAtLine(pos.line(first), f"{pos.indent(first)}{opt}.zero_grad()\n"),),
                applicability="unsafe",
            )
        self.report(
            step.call,
            message,
            fix=fix,
            related=related,
            data={"optimizer": opt, "loop_line": pos.line(loop.node)},
        )

    # -- resolution helpers --
    def _bindings_of(self, dotted: str, frame: _Frame) -> list[tuple[cst.BaseExpression, str | None]]:
        parts = dotted.split(".")
        if len(parts) == 2 and parts[0] in ("self", "cls"):
            return self._self_attrs.get(parts[1], [])
        if len(parts) != 1:
            return []
        scope: _Frame | None = frame
        while scope is not None:
            if dotted in scope.bindings:
                return scope.bindings[dotted]
            if dotted in scope.params:
                return []
            scope = scope.parent
        return []

    def _is_optimizer(self, dotted: str, frame: _Frame) -> bool:
        quals = [q for _, q in self._bindings_of(dotted, frame)]
        if any(is_torch_optimizer_qualname(q) for q in quals):
            return True
        if any(is_scheduler_qualname(q) for q in quals):
            return False
        return looks_like_optimizer_name(dotted)

    def _param_root(self, dotted: str, frame: _Frame) -> str | None:
        """``netG`` for ``optim.Adam(netG.parameters())``; None when not that plain."""
        bindings = self._bindings_of(dotted, frame)
        if len(bindings) != 1:
            return None
        value, qual = bindings[0]
        if not (isinstance(value, cst.Call) and is_torch_optimizer_qualname(qual)):
            return None
        first = next((a.value for a in value.args if a.keyword is None or a.keyword.value == "params"), None)
        if not (isinstance(first, cst.Call) and isinstance(first.func, cst.Attribute)):
            return None
        if first.func.attr.value not in ("parameters", "named_parameters"):
            return None
        return dotted_name(first.func.value)

    def _may_clear(self, desc: _CallDesc, visiting: set[int]) -> bool:
        if desc.kind in ("name", "self", "attr") and desc.name in self._defs:
            return any(self._frame_clears(f, visiting) for f in self._defs[desc.name])
        if desc.kind == "name":
            if desc.qual is not None:
                return desc.qual.split(".", 1)[0] not in _SAFE_ROOTS
            return desc.passes_optimizer and not desc.bound
        if desc.kind == "self":
            # An inherited method we cannot see, unless it is an attribute set in
            # this file or a unittest assertion.
            return desc.name not in self._self_attrs and not desc.name.startswith("assert")
        if desc.kind == "module":
            return (desc.qual or "").split(".", 1)[0] not in _SAFE_ROOTS
        return desc.passes_optimizer and desc.name not in _SAFE_OPTIMIZER_CONSUMERS

    def _frame_clears(self, frame: _Frame, visiting: set[int]) -> bool:
        key = id(frame)
        if key in self._clears_memo:
            return self._clears_memo[key]
        if key in visiting:
            return False
        visiting.add(key)
        result = frame.direct_clear or any(self._may_clear(d, visiting) for d in frame.calls)
        visiting.discard(key)
        self._clears_memo[key] = result
        return result


def _call_text(call: cst.Call) -> str:
    """``optimizer.step()`` / ``scaler.step(optimizer)`` without the arguments' clutter."""
    func = dotted_name(call.func) or "step"
    args = ", ".join(d for a in call.args if (d := dotted_name(a.value)) is not None)
    return f"{func}({args})"


def _mentions_grad(node: cst.BaseExpression) -> bool:
    """Does an attribute chain go through ``.grad`` (``p.grad``, ``p.grad.data``)?"""
    while isinstance(node, (cst.Attribute, cst.Subscript)):
        if isinstance(node, cst.Attribute) and node.attr.value == "grad":
            return True
        node = node.value
    return False


def _overlaps(a: str, b: str) -> bool:
    """``model`` and ``model.head`` share parameters; ``netG`` and ``netD`` do not."""
    return a == b or a.startswith(b + ".") or b.startswith(a + ".")
