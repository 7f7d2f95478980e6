"""What a module's ``__init__`` does before ``Module.__init__`` runs (TL108, module-missing-super-init).

``nn.Module.__setattr__`` needs the tables ``Module.__init__`` creates, so the
order of an ``__init__``'s statements matters: a store on ``self`` of a layer
before the call fails, a plain value does not, and code ``self`` is handed to
(``self.setup()``, ``init(self)``) may make the call itself. The questions are
answered here on libcst's tree (for the rule) and, more weakly, on CPython's
tree (:func:`init_may_store_first`: the rule's pre-check, which must never skip
a class the rule would report).
"""

from __future__ import annotations

import ast
from collections.abc import Callable

import libcst as cst

from torchlint.analysis.values import ClassV
from torchlint.gates import all_statements
from torchlint.walk import walk

_PARAMETERS = frozenset({"torch.nn.Parameter", "torch.nn.parameter.Parameter"})

# (libcst.matchers is not used here: importing it costs an analysis process a third
# of its start-up, and findall() rebuilds every node it passes.)


def _findall(node: cst.CSTNode, kinds: type | tuple[type, ...]) -> list[cst.CSTNode]:
    """The nodes of these types in ``node``'s subtree (``node`` included), in visiting order."""
    out: list[cst.CSTNode] = []
    walk(node, lambda n: out.append(n) if isinstance(n, kinds) else None, lambda n: None)
    return out


def _is_name(node: cst.CSTNode, name: str) -> bool:
    return isinstance(node, cst.Name) and node.value == name


def _is_self_attribute(node: cst.CSTNode, me: str) -> bool:
    """``self.x``"""
    return isinstance(node, cst.Attribute) and _is_name(node.value, me)


# -- on libcst's tree (the rule) ----------------------------------------------------


def init_method(cls: cst.ClassDef) -> cst.FunctionDef | None:
    """The first ``def __init__`` directly in the class body."""
    body = list(cls.body.body) if isinstance(cls.body, cst.IndentedBlock) else []
    return next((s for s in body if isinstance(s, cst.FunctionDef) and s.name.value == "__init__"), None)


def init_statements(block: cst.BaseSuite) -> list[cst.CSTNode]:
    """The statements of ``__init__`` in order: small statements one by one, a compound
    statement (if/for/with/try) as one unit, checked as a whole."""
    out: list[cst.CSTNode] = []
    for stmt in getattr(block, "body", ()):
        if isinstance(stmt, cst.SimpleStatementLine):
            out.extend(stmt.body)
        elif isinstance(stmt, cst.BaseSmallStatement):
            out.append(stmt)
        elif not isinstance(stmt, (cst.FunctionDef, cst.ClassDef)):
            out.append(stmt)
    return out


def calls_init(node: cst.CSTNode) -> bool:
    """``super().__init__(...)``, ``super(Net, self).__init__()``, ``nn.Module.__init__(self)``, ``Base.__init__(self)``."""
    return any(
        isinstance(c.func, cst.Attribute) and _is_name(c.func.attr, "__init__")  # type: ignore[attr-defined]
        for c in _findall(node, cst.Call)
    )


def _stored_value(stmt: cst.CSTNode, me: str) -> cst.BaseExpression | None:
    """The value stored by ``self.x = value`` / ``self.x: T = value`` (None: another statement)."""
    if isinstance(stmt, cst.Assign):
        for t in stmt.targets:
            if _is_self_attribute(t.target, me):
                return stmt.value
    if isinstance(stmt, cst.AnnAssign) and stmt.value is not None and _is_self_attribute(stmt.target, me):
        return stmt.value
    return None


def self_stores(stmt: cst.CSTNode, me: str) -> list[tuple[cst.Assign | cst.AnnAssign, cst.BaseExpression]]:
    """The stores on ``self`` a statement of :func:`init_statements` makes, with their values
    (a compound statement: every store in it)."""
    stores = [stmt] if not isinstance(stmt, cst.BaseCompoundStatement) else _findall(stmt, (cst.Assign, cst.AnnAssign))
    return [(x, v) for x in stores if (v := _stored_value(x, me)) is not None]  # type: ignore[misc]


def hands_self_on(node: cst.CSTNode, me: str) -> bool:
    """``self.setup()``, ``init_weights(self)``: code not followed here may call ``Module.__init__``."""
    for call in _findall(node, cst.Call):
        assert isinstance(call, cst.Call)
        if _is_self_attribute(call.func, me) or any(_is_name(a.value, me) for a in call.args):
            return True
    return False


def is_declaration(func: cst.FunctionDef) -> bool:
    """``def __init__(self) -> None: ...``: a declaration (a stub, a protocol), not code."""
    stmts = init_statements(func.body)
    return all(isinstance(x, cst.Expr) and isinstance(x.value, (cst.Ellipsis, cst.SimpleString)) for x in stmts)


def self_names(node: cst.CSTNode, me: str) -> list[cst.Name]:
    """The reads of ``self`` in a statement, in visiting order."""
    return [n for n in _findall(node, cst.Name) if _is_name(n, me)]  # type: ignore[misc]


def is_layer(value: cst.BaseExpression, qualname: Callable[[cst.BaseExpression], str | None], model) -> bool:  # type: ignore[no-untyped-def]
    """Does ``value`` build a submodule or a Parameter, as far as the imports (``torch.nn``
    classes, ``nn.Parameter``) and the program model (a torch module class of the file) say?"""
    if not isinstance(value, cst.Call):
        return False
    qual = qualname(value.func) or ""
    if qual in _PARAMETERS:
        return True
    head, _, last = qual.rpartition(".")
    if head in ("torch.nn", "torch.nn.modules") and last[:1].isupper():
        return True
    fact = model.fact(value)
    return fact is not None and isinstance(fact.func, ClassV) and model.is_torch_module_class(fact.func.node.name.value)


# -- on CPython's tree (the rule's pre-check) ----------------------------------------


def class_inits(tree: ast.Module) -> list[tuple[ast.ClassDef, ast.FunctionDef | ast.AsyncFunctionDef]]:
    """The ``__init__`` methods (with a ``self``) of classes that have bases, anywhere in the file."""
    return [
        (c, s)
        for c in all_statements(tree) if isinstance(c, ast.ClassDef) and c.bases
        for s in c.body if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef)) and s.name == "__init__" and s.args.args
    ]  # fmt: skip


def init_may_store_first(init: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """False only where TL108 cannot report: an ``.__init__(...)`` call comes before any
    ``self.x = <call>`` and before anything that hands ``self`` on (which is treated as "may")."""
    me = init.args.args[0].arg
    for stmt in init.body:
        nodes = list(ast.walk(stmt))
        if any(isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == "__init__" for n in nodes):
            return False
        for n in nodes:
            if isinstance(n, ast.Assign) and isinstance(n.value, ast.Call) and any(_ast_self_attr(t, me) for t in n.targets):
                return True
            if isinstance(n, ast.AnnAssign) and isinstance(n.value, ast.Call) and _ast_self_attr(n.target, me):
                return True
            if isinstance(n, ast.Call) and (
                _ast_self_attr(n.func, me)
                or any(_ast_is(a.value if isinstance(a, ast.Starred) else a, me) for a in n.args)
                or any(_ast_is(k.value, me) for k in n.keywords)
            ):
                return True
    return True  # never calls it: the rule judges


def _ast_is(node: ast.AST, name: str) -> bool:
    return isinstance(node, ast.Name) and node.id == name


def _ast_self_attr(node: ast.AST, me: str) -> bool:
    return isinstance(node, ast.Attribute) and _ast_is(node.value, me)


__all__ = [
    "calls_init",
    "class_inits",
    "hands_self_on",
    "init_may_store_first",
    "init_method",
    "init_statements",
    "is_declaration",
    "is_layer",
    "self_names",
    "self_stores",
]
