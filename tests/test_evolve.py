"""diagnostics.evolve: dataclasses.replace for the frozen dataclasses a notebook's findings are copied through."""

from __future__ import annotations

import dataclasses

import pytest

from torchlint.diagnostics import Edit, Finding, Fix, Range, Related, evolve
from torchlint.engine import LintOptions


@pytest.mark.parametrize(
    "obj, changes",
    [
        (
            Finding("TL201", "iterator-next-method", "msg", Range(3, 4, 3, 9), fix=Fix("safe", "fix it", (Edit(Range(3, 4, 3, 9), "x"),)), data={"a": 1}),
            {"range": Range(1, 4, 1, 9), "cell": 2, "message": "in cell 2", "related": (Related(Range(1, 0, 1, 1), "here", cell=2),)},
        ),
        (LintOptions(codes=frozenset({"TL101"})), {"document": object()}),
        (Range(1, 2, 3, 4), {"end_column": 7}),
    ],
)
def test_evolve_is_dataclasses_replace(obj, changes):
    before = dataclasses.replace(obj)
    new = evolve(obj, **changes)
    assert new == dataclasses.replace(obj, **changes)
    assert type(new) is type(obj)
    assert all(getattr(new, name) is value for name, value in changes.items())
    assert obj == before  # (the original is left as it was)
    assert dataclasses.fields(new) == dataclasses.fields(obj)
    with pytest.raises(dataclasses.FrozenInstanceError):
        new.__setattr__(dataclasses.fields(new)[0].name, None)
    if type(obj).__hash__ is not None:
        assert hash(new) == hash(dataclasses.replace(obj, **changes))
