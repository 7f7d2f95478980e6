"""Small questions the PyTorch-API rules (TL205-TL209, TL6xx, TL7xx) ask of a call or a value.

Syntax plus import resolution only; every answer may be "don't know" (None),
and the rules stay silent then.
"""

from __future__ import annotations

import libcst as cst

from torchlint.names import target_names
from torchlint.rules.base import Context, FixOp, InsertAfter, Replace

__all__ = [
    "ScopeTracker",
    "add_keyword",
    "argument",
    "forwards_kwargs",
    "keyword",
    "is_number",
    "target_torch_version",
    "version_text",
]


def keyword(call: cst.Call, name: str) -> cst.Arg | None:
    return next((a for a in call.args if a.keyword is not None and a.keyword.value == name), None)


def forwards_kwargs(call: cst.Call) -> bool:
    """``f(**kwargs)``: any keyword may be in there."""
    return any(a.star == "**" for a in call.args)


def argument(call: cst.Call, name: str, position: int | None) -> cst.Arg | None:
    """The argument bound to parameter ``name`` (keyword, or positional at ``position``).

    None when it is absent; also None (unknowable) behind a ``*args`` before that position.
    """
    found = keyword(call, name)
    if found is not None or position is None:
        return found
    for i, arg in enumerate(call.args):
        if arg.keyword is not None or arg.star == "**":
            break
        if arg.star == "*":
            return None
        if i == position:
            return arg
    return None


def add_keyword(call: cst.Call, text: str) -> tuple[FixOp, ...]:
    """Edits appending ``text`` (``name=value``) as the call's last argument."""
    if not call.args:
        new_arg = cst.ensure_type(cst.parse_expression(f"f({text})"), cst.Call).args[0]
        return (Replace(call, call.with_changes(args=(new_arg,))),)
    # After the last value: ``f(a, )`` becomes ``f(a, x=1, )``, still valid.
    return (InsertAfter(call.args[-1].value, f", {text}"),)


def is_number(expr: cst.BaseExpression, value: float) -> bool:
    """The literal ``1`` / ``1.0`` / ``1.`` (for ``value=1``), parentheses allowed."""
    if isinstance(expr, cst.Integer):
        return expr.evaluated_value == value
    if isinstance(expr, cst.Float):
        return expr.evaluated_value == float(value)
    return False


# --- the target PyTorch version ---------------------------------------------


def target_torch_version(context: Context) -> tuple[int, ...] | None:
    """The torch version the project targets (``[tool.torchlint] torch-version`` or its dependencies).

    None when it is not known: rules then speak for the newest release.
    """
    value = getattr(context, "torch_version", None)
    if callable(value):
        value = value()
    if value is None:
        return None
    if isinstance(value, str):
        parts = []
        for piece in value.split("."):
            digits = "".join(ch for ch in piece if ch.isdigit())
            if not digits:
                break
            parts.append(int(digits))
        return tuple(parts) or None
    try:
        return tuple(int(v) for v in value)[:3]
    except (TypeError, ValueError):
        return None


def version_text(version: tuple[int, ...]) -> str:
    return ".".join(str(v) for v in version)


# --- what a name holds: the call it was built by ------------------------------


class _Assignments(cst.CSTVisitor):
    """Simple assignments ``name = <expr>`` / ``self.attr = <expr>`` of one scope (no nested defs)."""

    def __init__(self, root: cst.CSTNode) -> None:
        self.root = root
        self.values: dict[str, list[cst.BaseExpression | None]] = {}

    def _add(self, name: str, value: cst.BaseExpression | None) -> None:
        self.values.setdefault(name, []).append(value)

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        if node is self.root:
            return True
        self._add(node.name.value, None)
        return False

    def visit_ClassDef(self, node: cst.ClassDef) -> bool:
        self._add(node.name.value, None)
        return False

    def visit_Lambda(self, node: cst.Lambda) -> bool:
        return False

    def visit_Assign(self, node: cst.Assign) -> None:
        for t in node.targets:
            target = t.target
            if isinstance(target, (cst.Name, cst.Attribute)) and len(node.targets) == 1:
                key = _key(target)
                if key is not None:
                    self._add(key, node.value)
                    continue
            for name in target_names(target):
                self._add(name, None)

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        key = _key(node.target)
        if key is not None:
            self._add(key, node.value)

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        key = _key(node.target)
        if key is not None:
            self._add(key, None)

    def visit_For(self, node: cst.For) -> None:
        for name in target_names(node.target):
            self._add(name, None)

    def visit_WithItem(self, node: cst.WithItem) -> None:
        if node.asname is not None:
            for name in target_names(node.asname.name):
                self._add(name, None)

    def visit_NamedExpr(self, node: cst.NamedExpr) -> None:
        for name in target_names(node.target):
            self._add(name, None)

    def visit_Global(self, node: cst.Global) -> None:
        for item in node.names:
            self._add(item.name.value, None)

    def visit_Nonlocal(self, node: cst.Nonlocal) -> None:
        for item in node.names:
            self._add(item.name.value, None)

    def visit_ImportAlias(self, node: cst.ImportAlias) -> None:
        self._add((node.evaluated_alias or node.evaluated_name).split(".")[0], None)


def _key(target: cst.BaseExpression) -> str | None:
    if isinstance(target, cst.Name):
        return target.value
    if isinstance(target, cst.Attribute) and isinstance(target.value, cst.Name) and target.value.value == "self":
        return f"self.{target.attr.value}"
    return None


def _assignments(root: cst.CSTNode) -> dict[str, list[cst.BaseExpression | None]]:
    visitor = _Assignments(root)
    root.visit(visitor)
    if isinstance(root, cst.FunctionDef):
        params = root.params
        for p in (*params.posonly_params, *params.params, *params.kwonly_params):
            visitor._add(p.name.value, None)
        for star in (params.star_arg, params.star_kwarg):
            if isinstance(star, cst.Param):
                visitor._add(star.name.value, None)
    return visitor.values


class ScopeTracker:
    """Follows the rule's traversal (call its visit/leave hooks) to answer "what built this value?".

    ``constructor(expr)`` is the qualified name of the callable whose call built
    ``expr`` (``opt`` after ``opt = torch.optim.SGD(...)``; ``self.opt`` after
    ``self.opt = torch.optim.Adam(...)`` in any method of the class; ``self``
    in a class whose base is ``torch.nn.Module``), when every assignment in
    the scope agrees, else None.
    """

    def __init__(self, context: Context) -> None:
        self.context = context
        self._functions: list[cst.FunctionDef] = []
        self._classes: list[cst.ClassDef] = []
        self._cache: dict[int, dict[str, list[cst.BaseExpression | None]]] = {}

    # hooks
    def enter_function(self, node: cst.FunctionDef) -> None:
        self._functions.append(node)

    def leave_function(self) -> None:
        self._functions.pop()

    def enter_class(self, node: cst.ClassDef) -> None:
        self._classes.append(node)

    def leave_class(self) -> None:
        self._classes.pop()

    def _values(self, root: cst.CSTNode) -> dict[str, list[cst.BaseExpression | None]]:
        found = self._cache.get(id(root))
        if found is None:
            found = self._cache[id(root)] = _assignments(root)
        return found

    def _class_attributes(self, cls: cst.ClassDef) -> dict[str, list[cst.BaseExpression | None]]:
        key = id(cls)
        found = self._cache.get(key)
        if found is None:
            found = {}
            for stmt in cls.body.body if isinstance(cls.body, cst.IndentedBlock) else ():
                if isinstance(stmt, cst.FunctionDef):
                    for name, values in self._values(stmt).items():
                        if name.startswith("self."):
                            found.setdefault(name, []).extend(values)
            self._cache[key] = found
        return found

    def constructor(self, expr: cst.BaseExpression) -> str | None:
        if isinstance(expr, cst.Name):
            if expr.value == "self" and self._in_method():
                return self._class_base(self._classes[-1])
            values = None
            for scope in (*reversed(self._functions), self.context.module):
                found = self._values(scope).get(expr.value)
                if found is not None:
                    values = found
                    break
            return self._agreed(values)
        if (
            isinstance(expr, cst.Attribute)
            and isinstance(expr.value, cst.Name)
            and expr.value.value == "self"
            and self._in_method()
        ):
            return self._agreed(self._class_attributes(self._classes[-1]).get(f"self.{expr.attr.value}"))
        if isinstance(expr, cst.Call):
            return self.context.qualname(expr.func)
        return None

    def _in_method(self) -> bool:
        if not self._functions or not self._classes:
            return False
        cls = self._classes[-1]
        body = cls.body.body if isinstance(cls.body, cst.IndentedBlock) else ()
        return self._functions[-1] in body

    def _agreed(self, values: list[cst.BaseExpression | None] | None) -> str | None:
        if not values:
            return None
        names = set()
        for value in values:
            if not isinstance(value, cst.Call):
                return None
            names.add(self.context.qualname(value.func))
        if len(names) != 1:
            return None
        return names.pop()

    def _class_base(self, cls: cst.ClassDef) -> str | None:
        bases = {self.context.qualname(b.value) for b in cls.bases if b.keyword is None}
        return "torch.nn.Module" if bases & {"torch.nn.Module", "torch.nn.modules.module.Module"} else None

