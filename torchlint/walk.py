"""A read-only traversal of a libcst tree, in libcst's own visiting order.

``CSTNode.visit`` rebuilds (and re-validates) every node it passes even for a
read-only visitor, which costs about as much as the parse. Lint rules only
read, so we walk the fields directly. The field order per node class is
learned once from libcst itself (the order in which ``_visit_and_replace_children``
announces attributes), so rules see nodes in exactly the order a CSTVisitor would.
Whitespace and punctuation nodes are skipped: no rule looks at them, and they
are half of all nodes.
"""

from __future__ import annotations

import opcode
import sys
from collections.abc import Callable, Sequence
from types import CodeType

import libcst as cst

_SKIP: frozenset[type] = frozenset(
    {
        cst.SimpleWhitespace,
        cst.ParenthesizedWhitespace,
        cst.TrailingWhitespace,
        cst.EmptyLine,
        cst.Newline,
        cst.Comment,
        cst.LeftParen,
        cst.RightParen,
        cst.LeftSquareBracket,
        cst.RightSquareBracket,
        cst.LeftCurlyBrace,
        cst.RightCurlyBrace,
        cst.Comma,
        cst.Dot,
        cst.Colon,
        cst.AssignEqual,
        cst.Semicolon,
    }
)

_ORDER: dict[type, tuple[str, ...]] = {}


class _FieldRecorder(cst.CSTVisitor):
    def __init__(self) -> None:
        super().__init__()
        self.fields: list[str] = []

    def on_visit(self, node: cst.CSTNode) -> bool:
        return False

    def on_visit_attribute(self, node: cst.CSTNode, attribute: str) -> None:
        if attribute not in self.fields:
            self.fields.append(attribute)


def _fields(node: cst.CSTNode) -> tuple[str, ...]:
    kind = type(node)
    order = _ORDER.get(kind)
    if order is None:
        recorder = _FieldRecorder()
        node._visit_and_replace_children(recorder)
        order = _ORDER[kind] = tuple(recorder.fields)
    return order


# type -> what a field value of that type is: 0 nothing to walk (skipped nodes,
# strings, None), 1 a node, 2 a sequence of nodes. Exact-type lookups: libcst's
# base classes are ABCs, and ABC isinstance checks were a third of the walk.
_KIND: dict[type, int] = {tuple: 2, list: 2}


def _kind(kind: type) -> int:
    value = _KIND[kind] = 1 if issubclass(kind, cst.CSTNode) and kind not in _SKIP else 0
    return value


def walk(node: cst.CSTNode, on_visit: Callable[[cst.CSTNode], object], on_leave: Callable[[cst.CSTNode], object]) -> None:
    """Call ``on_visit``/``on_leave`` for ``node`` and its non-whitespace descendants, depth first."""
    on_visit(node)
    kinds = _KIND
    for name in _ORDER.get(type(node)) or _fields(node):
        child = getattr(node, name)
        k = kinds.get(type(child))
        if k is None:
            k = _kind(type(child))
        if k == 1:
            walk(child, on_visit, on_leave)
        elif k == 2:
            for item in child:
                t = kinds.get(type(item))
                if t is None:
                    t = _kind(type(item))
                if t == 1:
                    walk(item, on_visit, on_leave)
    on_leave(node)


# type -> its fields in visiting order, or None where libcst visits some field only
# conditionally (the recorded order of one instance may then miss a field).
_CHILD_ORDER: dict[type, tuple[str, ...] | None] = {}


# Conditional jumps (an ``if``, a conditional expression, ``and``/``or``) in a method's bytecode.
_CONDITIONAL_JUMPS = frozenset(i for i, name in enumerate(opcode.opname) if "JUMP" in name and "_IF_" in name)


def _branches(code: CodeType) -> bool:
    # (Read from the bytecode, not the source: inspect.getsource tokenizes libcst's modules, a
    # first lint's dearest start-up cost. Nested code objects are comprehensions and lambdas.)
    return any(op in _CONDITIONAL_JUMPS for op in code.co_code[::2]) or any(
        isinstance(c, CodeType) and _branches(c) for c in code.co_consts
    )


def _child_order(node: cst.CSTNode) -> tuple[str, ...] | None:
    kind = type(node)
    code = getattr(kind._visit_and_replace_children, "__code__", None)
    order = None if code is None or _branches(code) else _fields(node)
    _CHILD_ORDER[kind] = order
    return order


def children(node: cst.CSTNode) -> Sequence[cst.CSTNode]:
    """``node.children`` (the same nodes in the same order, whitespace included) without its cost.

    libcst computes ``children`` by visiting the node and rebuilding it (constructor and
    validation included); here the fields are read in libcst's visiting order. Node types
    that visit a field only conditionally fall back to libcst.
    """
    kind = type(node)
    order = _CHILD_ORDER[kind] if kind in _CHILD_ORDER else _child_order(node)
    if order is None:
        return node.children
    out: list[cst.CSTNode] = []
    nodes = _IS_NODE
    for name in order:
        child = getattr(node, name)
        t = type(child)
        if t is tuple or t is list:
            for c in child:
                k = nodes.get(type(c))
                if k is None:
                    k = nodes[type(c)] = issubclass(type(c), cst.CSTNode)
                if k:
                    out.append(c)
        else:
            k = nodes.get(t)
            if k is None:
                k = nodes[t] = issubclass(t, cst.CSTNode)
            if k:
                out.append(child)
    return out


# type -> is it a CSTNode (exact-type lookups: CSTNode is an ABC, and its isinstance is slow).
_IS_NODE: dict[type, bool] = {}


# Deeply nested expressions (long operator chains) recurse once per level, as libcst does.
if sys.getrecursionlimit() < 10000:
    sys.setrecursionlimit(10000)
