"""Small questions the PyTorch-API rules (TL205-TL209, TL6xx, TL7xx) ask of a call or a value.

Syntax plus import resolution only; every answer may be "don't know" (None),
and the rules stay silent then.
"""

from __future__ import annotations

import libcst as cst

from torchlint.rules.base import Context, FixOp, InsertAfter, Replace

__all__ = [
    "add_keyword",
    "argument",
    "forwards_kwargs",
    "is_number",
    "keyword",
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
