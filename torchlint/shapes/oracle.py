"""The shape analysis answering the program model's question "what shape is this tensor".

:meth:`torchlint.analysis.model.ProgramModel.shape` (and ``TensorV.shape``) come here on
their first request: one interpreter per file evaluates the expression where it sits, with
the names it reads followed through the model's definitions, as TL301 evaluates a model's
input; calling a model of the file gives its output when the tensor fits it.
"""

from __future__ import annotations

from typing import Any

import libcst as cst

from torchlint.analysis.values import Shape
from torchlint.shapes.interp import BudgetExceeded, Frame, Interpreter, Stop
from torchlint.shapes.values import BATCH, TensorV, is_int


class ShapeOracle:
    def __init__(self, model: Any) -> None:
        self.tables = model.tables
        self.interp = Interpreter(model.tables, model.code, model, outputs=True)

    def shape(self, expr: cst.BaseExpression, function: cst.FunctionDef | None) -> Shape | None:
        try:
            v = self.interp.eval(expr, Frame(self.tables.scope_of(function), "top", bind=True))
        except (BudgetExceeded, RecursionError, Stop):
            return None
        if not isinstance(v, TensorV) or v.open:
            return None
        origin = v.origin
        batch_size = origin.batch if origin is not None and is_int(origin.batch) else None
        dims = tuple(batch_size if d is BATCH else (d if is_int(d) else None) for d in v.dims)
        # A batch of a DataLoader (a tensor factory's first size is only assumed to be a batch).
        batch = origin is not None and origin.kind == "dataset" and bool(v.dims) and v.dims[0] is BATCH
        return Shape(dims, batch, v.dtype, v)


__all__ = ["ShapeOracle"]
