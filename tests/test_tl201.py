"""TL201 iterator-next-method: what counts as an iterator, and when the rule must stay silent."""

from __future__ import annotations

import pytest

from torchlint.testing import RuleTester

RULE = RuleTester("TL201")
findings, lines, fixed = RULE.findings, RULE.lines, RULE.fixed


@pytest.mark.parametrize(
    "producer",
    [
        "iter(loader)",
        "loader.__iter__()",
        "iter(read_line, '')",  # iter(callable, sentinel)
        "map(transform, items)",
        "zip(images, labels)",
        "enumerate(loader)",
        "filter(None, rows)",
        "(x * 2 for x in items)",
        "itertools.cycle(loader)",
        "itertools.islice(loader, 10)",
        "itertools.chain.from_iterable(loaders)",
    ],
)
def test_iterator_producers_are_recognised(producer):
    assert lines(f"import itertools\nit = {producer}\nx = it.next()\n") == [3]


def test_builtin_iterators_are_flagged_even_when_a_class_defines_next():
    # zip() and friends never hand out a user object, whatever classes the file defines.
    code = """
    class Cursor:
        def next(self):
            return 1

    pairs = zip(a, b)
    pairs.next()
    it = iter(Cursor())
    it.next()
    """
    assert lines(code) == [7]


def test_dataloader_iterator_is_flagged_when_a_class_defines_next():
    code = """
    from torch.utils.data import DataLoader

    class Schedule:
        next = lambda self: 0.1

    loader = DataLoader(ds, batch_size=4)
    it = iter(loader)
    it.next()
    other = iter(something_else)
    other.next()
    """
    assert lines(code) == [9]


def test_py2_compatible_class_silences_iter_results():
    code = """
    class Rows:
        def __iter__(self):
            return self
        def __next__(self):
            return 1
        next = __next__

    it = iter(Rows())
    it.next()
    """
    assert lines(code) == []


def test_shadowed_builtins_are_not_iterators():
    assert lines("def zip(*a):\n    return Pager(a)\n\np = zip(1, 2)\np.next()\n") == []
    assert lines("from mylib import iter\nit = iter(x)\nit.next()\n") == []
    assert lines("def f(iter):\n    it = iter(x)\n    return it.next()\n") == []


def test_self_attribute_receivers():
    code = """
    class Trainer:
        def __init__(self, loader):
            self.loader = loader
            self.it = iter(loader)

        def batch(self):
            try:
                return self.it.next()
            except StopIteration:
                self.it = iter(self.loader)
                return self.it.next()

        def helper(self):
            def inner():
                return self.it.next()
            return inner()
    """
    assert lines(code) == [9, 12, 16]
    assert "next(self.it)" in fixed(code) and ".next()" not in fixed(code)


def test_self_attribute_receivers_stay_silent_when_unsure():
    # Assigned a non-iterator somewhere (any object, any class): it may have next().
    assert lines(
        """
        class A:
            def __init__(self, loader):
                self.it = iter(loader)
            def get(self):
                return self.it.next()

        a = A(loader)
        a.it = make_stream()
        """
    ) == []
    # Not the method's self: an arbitrary object's attribute.
    assert lines(
        """
        class A:
            def __init__(self, loader):
                self.it = iter(loader)
            def get(self, other):
                return other.it.next()
        """
    ) == []
    # A staticmethod's first parameter is not self.
    assert lines(
        """
        class A:
            def __init__(self, loader):
                self.it = iter(loader)
            @staticmethod
            def get(self):
                return self.it.next()
        """
    ) == []
    # A closure that rebinds the name.
    assert lines(
        """
        class A:
            def __init__(self, loader):
                self.it = iter(loader)
            def get(self):
                def inner(self):
                    return self.it.next()
                return inner
        """
    ) == []
    # Never assigned in the file.
    assert lines("class A:\n    def get(self):\n        return self.it.next()\n") == []


def test_class_body_names_are_not_seen_by_methods():
    code = """
    class A:
        it = iter(loader)
        def get(self, it):
            return it.next()
    """
    assert lines(code) == []


def test_rebinding_and_parameters_make_the_name_unknown():
    assert lines("it = iter(loader)\nfor it in pages:\n    pass\nit.next()\n") == []
    assert lines("it = iter(loader)\nwith open('f') as it:\n    it.next()\n") == []
    assert lines("def f(it):\n    return it.next()\n") == []
    assert lines("it = iter(loader)\nit += 1\nit.next()\n") == []
    # A function-local name shadows the module-level iterator.
    assert lines("it = iter(loader)\ndef f(it):\n    return it.next()\n") == []


def test_next_with_arguments_is_not_the_iterator_protocol():
    assert lines("it = iter(pages)\nit.next(10)\nit.next(timeout=1)\n") == []


def test_fix_and_message():
    (f,) = findings("dataiter = iter(trainloader)\nimages, labels = dataiter.next()\n")
    assert f.message == "`dataiter.next()` does not exist on Python 3 iterators; use `next(dataiter)`"
    assert (f.range.line, f.range.column, f.range.end_column) == (2, 17, 32)
    assert f.fix is not None and f.fix.applicability == "safe"
    assert fixed("images, labels = iter(trainloader).next()\n") == "images, labels = next(iter(trainloader))\n"


def test_no_fix_where_next_is_rebound():
    code = "it = iter(loader)\n\ndef f():\n    next = 3\n    return it.next()\n\nit.next()\n"
    fs = findings(code)
    assert [(f.range.line, f.fix is None) for f in fs] == [(5, True), (7, False)]


def test_noqa():
    assert lines("it = iter(loader)\nit.next()  # noqa: TL201\n") == []


def test_the_premise_and_the_fix_with_real_torch():
    """The flagged call really fails on a DataLoader iterator, and the fixed code runs."""
    torch = pytest.importorskip("torch")
    from torch.utils.data import DataLoader, TensorDataset

    loader = DataLoader(TensorDataset(torch.arange(8.0)), batch_size=4)
    code = "dataiter = iter(loader)\n(batch,) = dataiter.next()\n"
    with pytest.raises(AttributeError, match="has no attribute 'next'"):
        exec(code, {"loader": loader})
    ns = {"loader": loader}
    exec(fixed(code), ns)
    assert ns["batch"].tolist() == [0.0, 1.0, 2.0, 3.0]


def test_self_attribute_must_be_set_by_the_methods_own_class():
    code = """
    class A:
        def __init__(self, loader):
            self.it = iter(loader)

    class B(ExternalBase):
        def get(self):
            # ExternalBase may set self.it to anything.
            return self.it.next()

    class C:
        it = make_cursor()
        def get(self):
            return self.it.next()
    """
    assert lines(code) == []
    code = """
    class D:
        @property
        def it(self):
            return self._cursor
        def reset(self, loader):
            self.it = iter(loader)
        def get(self):
            return self.it.next()
    """
    assert lines(code) == []
