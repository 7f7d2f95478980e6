"""Small questions the PyTorch-API rules (TL202-TL209, TL6xx, TL7xx) ask of a call or a value,
and the edits their fixes share (a keyword added, a name referenced or imported).

Syntax plus import resolution only; every answer may be "don't know" (None),
and the rules stay silent then.
"""

from __future__ import annotations

import libcst as cst

from torchlint.names import dotted_name
from torchlint.rules.base import Context, FixOp, InsertAfter, InsertAtLine, Replace

__all__ = [
    "add_keyword",
    "argument",
    "condition_text",
    "forwards_kwargs",
    "is_number",
    "keyword",
    "reference_to",
    "replace_argument",
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


def replace_argument(arg: cst.Arg, keyword: str, value: str) -> tuple[FixOp, ...]:
    """Edits turning ``arg`` (a keyword argument, or a positional one) into ``keyword=value``."""
    if arg.keyword is None:
        return (Replace(arg.value, f"{keyword}={value}"),)
    return (Replace(arg.keyword, cst.Name(keyword)), Replace(arg.value, value))


# Expressions that bind looser than a conditional's test and so need parentheses there.
_NEEDS_PARENS = (cst.IfExp, cst.Lambda, cst.NamedExpr, cst.Yield)


def condition_text(context: Context, expr: cst.BaseExpression) -> str:
    """The code of ``expr`` as the test of a conditional expression (``a if <test> else b``)."""
    test = context.code(expr)
    return f"({test})" if isinstance(expr, _NEEDS_PARENS) and not expr.lpar else test


def reference_to(context: Context, name: str, modules: tuple[str, ...], via: cst.BaseExpression, ops: list[FixOp]) -> str | None:
    """Code naming ``<module>.<name>`` (``module`` any of ``modules``) next to a call of ``via``.

    Through the module ``via`` was reached by (``models.resnet18`` -> ``models.ResNet18_Weights``),
    else the name itself where the file imports it already, else the name with an import
    appended to ``ops``: added to a leading one-line ``from <module> import ...``, or a new
    ``from <modules[0]> import <name>`` line. None where ``name`` means something else here.
    """
    prefix = via.value if isinstance(via, cst.Attribute) else None
    while prefix is not None:
        if context.qualname(prefix) in modules:
            return f"{context.code(prefix)}.{name}"
        prefix = prefix.value if isinstance(prefix, cst.Attribute) else None
    names = context.names
    bound = names.lookup(name)
    if bound in {f"{module}.{name}" for module in modules}:
        return name
    if bound is not None or names.is_bound_locally(name):
        return None  # importing it would change what it means
    target = _leading_import_from(context, modules)
    if target is not None:
        ops.append(Replace(target, target.with_changes(names=(*target.names, cst.ImportAlias(cst.Name(name))))))
    else:
        ops.append(InsertAtLine(context.import_insertion_line(), f"from {modules[0]} import {name}\n"))
    return name


def _leading_import_from(context: Context, modules: tuple[str, ...]) -> cst.ImportFrom | None:
    """A one-line ``from <one of modules> import ...`` among the module's leading imports."""
    for i, stmt in enumerate(context.module.body):
        if not isinstance(stmt, cst.SimpleStatementLine):
            return None
        small = stmt.body[0] if stmt.body else None
        if i == 0 and isinstance(small, cst.Expr) and isinstance(small.value, (cst.SimpleString, cst.ConcatenatedString)):
            continue  # the docstring
        if not isinstance(small, (cst.Import, cst.ImportFrom)):
            return None
        for imp in stmt.body:
            if (
                isinstance(imp, cst.ImportFrom)
                and not imp.relative
                and imp.module is not None
                and dotted_name(imp.module) in modules
                and not isinstance(imp.names, cst.ImportStar)
                and imp.lpar is None
            ):
                return imp
    return None


def is_number(expr: cst.BaseExpression, value: float) -> bool:
    """The literal ``1`` / ``1.0`` / ``1.`` (for ``value=1``), parentheses allowed."""
    if isinstance(expr, cst.Integer):
        return expr.evaluated_value == value
    if isinstance(expr, cst.Float):
        return expr.evaluated_value == float(value)
    return False


# --- the target PyTorch version ---------------------------------------------


def target_torch_version(context: Context) -> tuple[int, ...] | None:
    """The torch release the file is linted for (``Context.knowledge.target``: ``[tool.torchlint]
    torch-version``, else the lowest its declared dependencies admit, else the newest known).

    None only when no knowledge base is at hand: rules then speak for current PyTorch.
    """
    try:
        target = context.knowledge.target
    except (AttributeError, OSError, ValueError):
        return None
    version = getattr(target, "torch", None)
    if version is None:
        return None
    return (version.major, version.minor, version.patch)


def target_is_declared(context: Context) -> bool:
    """Did the project say which torch it runs (config or dependencies), rather than torchlint assuming the newest?"""
    try:
        return getattr(context.knowledge.target, "source", "newest") != "newest"
    except (AttributeError, OSError, ValueError):
        return False


def version_text(version: tuple[int, ...]) -> str:
    """``2.4`` for (2, 4, 0), ``2.4.1`` for (2, 4, 1)."""
    parts = list(version[:3])
    while len(parts) > 2 and parts[-1] == 0:
        parts.pop()
    return ".".join(str(v) for v in parts)
