"""The shared name-binding analysis (torchlint/analysis/bindings.py): what a module binds, where, and its reads."""

from __future__ import annotations

import ast

from torchlint.analysis.bindings import ModuleBindings, module_bindings


def _bindings(source: str) -> ModuleBindings:
    return ModuleBindings(ast.parse(source))


def _unbound(source: str) -> list[tuple[str, int, tuple[int, int] | None]]:
    """(name, line, where a later statement binds it) for every read the name is not bound at."""
    b = _bindings(source)
    return [(r.name, r.pos[0], b.later_binding(r)) for r in b.reads if not b.bound_at(r)]


def test_module_level_reads_need_an_earlier_binding_and_say_where_the_later_one_is():
    assert _unbound("print(x)\nx = 1\nprint(x)\n") == [("print", 1, None), ("x", 1, (2, 5)), ("print", 3, None)]


def test_a_statement_reading_the_name_it_binds_does_not_define_it():
    assert _unbound("model = model.cuda()\n") == [("model", 1, None)]
    assert _unbound("model = model.cuda()\nmodel = 2\n") == [("model", 1, (2, 9))]


def test_function_bodies_are_looked_up_when_called():
    b = _bindings("def f():\n    return helper()\n\ndef helper():\n    return 1\n")
    reads = {r.name: r for r in b.reads}
    assert reads["helper"].deferred and b.bound_at(reads["helper"])
    assert b.later_binding(reads["helper"]) is None
    assert _unbound("def f():\n    return helper()\n") == [("helper", 2, None)]


def test_names_bound_in_their_own_scope_are_not_reads():
    b = _bindings("squares = [i * i for i in range(3)]\ndef f(a):\n    b = a\n    return b\nclass A:\n    n = 1\n    m = n + 1\n")
    assert sorted(r.name for r in b.reads) == ["range"]


def test_global_star_import_and_walrus_bind():
    assert _unbound("def setup():\n    global model\n    model = 1\n\nsetup()\nprint(model)\n") == [("print", 6, None)]
    assert _unbound("t = tensor([1])\nfrom torch import *\nu = tensor([2])\n") == [("tensor", 1, None)]
    assert _unbound("if (n := 3) > 2:\n    print(n)\n") == [("print", 2, None)]


def test_deleting_reads_the_name():
    assert _unbound("del x\n") == [("x", 1, None)]
    assert _unbound("x = 1\ndel x\n") == []



def _reads(source: str) -> list[tuple[str, tuple[int, int]]]:
    return [(r.name, r.pos) for r in _bindings(source).reads]


def test_a_functions_own_names_hold_for_its_whole_body_and_for_the_functions_nested_in_it():
    src = "def f():\n    print(x)\n    x = 1\n    def g():\n        return x, y\n    return g\n"
    assert _reads(src) == [("print", (2, 4)), ("y", (5, 18))]
    # A comprehension's targets are the enclosing function's own names too; a lambda's are not.
    assert _reads("def f():\n    print(i)\n    return [i for i in items]\n") == [("print", (2, 4)), ("items", (3, 23))]
    assert _reads("def f():\n    g = lambda: [q for q in r]\n    return q\n") == [("r", (2, 28)), ("q", (3, 11))]
    # A deleted or annotated name is the function's own; a ``global``/``nonlocal`` one is not.
    assert _reads("def f():\n    del x\n    print(x)\n") == [("print", (3, 4))]
    assert _reads("def f():\n    x: int\n    return x\n") == []
    assert _reads("def f(t):\n    nonlocal v\n    print(v, t)\n    v = 1\n    return v\n") == [
        ("print", (3, 4)), ("v", (3, 10))]


def test_names_bound_in_a_function_without_being_its_own_count_from_the_binding_on():
    b = _bindings("def f():\n    print(y)\n    global y\n    y = 1\n    print(y)\n")
    assert [(r.name, r.pos) for r in b.reads] == [("print", (2, 4)), ("y", (2, 10)), ("print", (5, 4))]
    assert b.everywhere == {"y"}
    # A walrus in a lambda, or in a nested function's default, binds in the function (and the module).
    b = _bindings("def f():\n    print(y)\n    g = lambda: (y := 1)\n    print(y)\n")
    assert [(r.name, r.pos) for r in b.reads] == [("print", (2, 4)), ("y", (2, 10)), ("print", (4, 4))]
    assert b.module == {"y": [(3, 23)], "f": [(4, 12)]}
    src = "def f():\n    print(z)\n    def g(a=(z := 1)):\n        pass\n    print(z)\n"
    assert _reads(src) == [("print", (2, 4)), ("z", (2, 10)), ("print", (5, 4))]


def test_a_class_body_sees_its_names_in_order_and_its_methods_only_the_earlier_ones():
    b = _bindings("class A:\n    print(n)\n    n = 1\n    def m(self):\n        return n, k\n    k = 2\n")
    assert [(r.name, r.pos, r.deferred) for r in b.reads] == [
        ("print", (2, 4), False), ("n", (2, 10), False), ("k", (5, 18), True)]


class _Context:
    def __init__(self, source: str) -> None:
        self.source = source
        self.cache: dict = {}


def test_module_bindings_is_built_once_per_file_and_none_for_text_cpython_cannot_parse():
    context = _Context("x = 1\nprint(x)\n")
    first = module_bindings(context)
    assert isinstance(first, ModuleBindings) and module_bindings(context) is first
    assert module_bindings(_Context("def (:\n")) is None
