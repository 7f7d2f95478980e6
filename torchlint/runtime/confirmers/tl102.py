"""TL102: run the loop and look at the accumulator's autograd graph before each addition.

The flagged addition is rewritten to hand the harness the accumulator as it
was before the addition (``acc += x`` -> ``acc += accumulated(x, lambda: acc)``;
the same for ``acc.append(x)``), for up to six iterations. Confirmed when the
accumulator holds a ``grad_fn`` and the number of autograd nodes it keeps alive
grows at every iteration (at least three): each step's graph is retained. Not
reproduced when it carries no graph, or its graph is dropped again (an
accumulator that is backpropagated and reset every few batches).
"""

from __future__ import annotations

import ast
from typing import Any

from torchlint.diagnostics import Confirmation
from torchlint.runtime.confirmers import Job, Options, build_job, ran
from torchlint.runtime.extract import Claim, ModuleIndex, Planner, guess_setup

CODE = "TL102"
# Enough additions for a legitimate accumulator (summed over time steps or a few batches, then
# backpropagated and reset) to show its reset; three are the least that show growth.
PASSES = 6
LEAST = 3


def _chars(index: ModuleIndex, line: int, offset: int) -> int:
    text = index.lines[line - 1] if 0 < line <= len(index.lines) else ""
    return len(text.encode()[:offset].decode(errors="replace"))


def _added(index: ModuleIndex, claim: Claim) -> tuple[ast.expr, str] | None:
    """The added expression and the accumulator's name at the claim."""
    for node in ast.walk(index.tree):
        if getattr(node, "lineno", None) != claim.line or _chars(index, node.lineno, node.col_offset) != claim.column:
            continue
        if isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name):
            return node.value, node.target.id
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and isinstance(node.func.value, ast.Name) and node.args:
            return node.args[0], node.func.value.id
    return None


def prepare(index: ModuleIndex, claim: Claim, options: Options, others: list[Claim] = ()) -> Job | Confirmation:  # type: ignore[assignment]
    found = _added(index, claim)
    if found is None:
        return Confirmation("could-not-run", f"no accumulation found at line {claim.line}", {"stage": "extract"})
    value, acc = found
    stmt = index.statement_at(claim.line, claim.column)
    setup = guess_setup(index)
    planner = Planner(index, force_branches=options.force_branches)
    end = value.end_lineno or value.lineno
    key = (value.lineno, _chars(index, value.lineno, value.col_offset), end, _chars(index, end, value.end_col_offset or 0))
    planner.plan.rewrites.append((*key, f"accumulate:{acc}"))
    planner.reach(stmt, "T", setup)
    return build_job(index, claim, options, setup, planner, interpret, "tl102", stop_after=PASSES, loop_limit=PASSES + 1)


def interpret(job: Job, result: Any) -> Confirmation:
    detail = ran(job, result)
    if isinstance(detail, Confirmation):
        return detail
    seen = (result.payload.get("measure") or {}).get("accumulator") or []
    detail["accumulator"] = seen
    detail["added_grad_fn"] = (result.payload.get("measure") or {}).get("added_grad_fn")
    acc = job.claim.data.get("accumulator") or "the accumulator"
    if len(seen) < LEAST:
        return Confirmation("could-not-run", f"line {job.claim.line} ran {len(seen)} time(s); {LEAST} are needed", detail)
    nodes = [s.get("nodes", 0) for s in seen]
    last = seen[-1]
    if last.get("grad_fn") and nodes[1] > 0 and all(b > a for a, b in zip(nodes[1:], nodes[2:])):
        return Confirmation(
            "confirmed",
            f"before addition {len(seen)} `{acc}` has grad_fn={last['grad_fn']} and keeps {nodes[-1]} autograd nodes alive "
            f"(before each addition: {', '.join(map(str, nodes))}): every iteration's graph is retained",
            detail,
        )
    return Confirmation("not-reproduced", f"`{acc}` carries no growing graph (autograd nodes per iteration: {nodes})", detail)
