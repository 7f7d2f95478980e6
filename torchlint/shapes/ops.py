"""Shape arithmetic: conv/pool output sizes, view/reshape/flatten, indexing.

Functions take and return dim tuples (see values.py). They never guess: a
result that depends on something unknown is ``None`` (one dim) or ``UNKNOWN``.
Errors that torch would raise for sure are returned as :class:`Failure`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from torchlint.shapes.values import BATCH, Dim, is_int


@dataclass
class Failure:
    """A certain error: ``kind`` picks the message; ``info`` holds the numbers."""

    kind: str
    info: dict[str, Any] = field(default_factory=dict)


def as_dim(v: Any) -> Dim:
    """A computed value used as a size: int, BATCH, or None."""
    if is_int(v) or v is BATCH:
        return v
    return None


def int_or_none(d: Dim, batch_value: int | None = None) -> int | None:
    if is_int(d):
        return d  # type: ignore[return-value]
    if d is BATCH:
        return batch_value
    return None


def tuple_n(v: Any, n: int) -> tuple[Any, ...] | None:
    """An int or an n-tuple of ints (``kernel_size=3`` or ``(3, 3)``), else None."""
    if is_int(v):
        return (v,) * n
    if isinstance(v, (tuple, list)) and len(v) == n and all(is_int(x) for x in v):
        return tuple(v)
    if isinstance(v, (tuple, list)) and len(v) == 1 and is_int(v[0]):
        return (v[0],) * n
    return None


def monomial(dims: tuple[Dim, ...]) -> tuple[int, int] | None:
    """prod(dims) as coefficient × B**power, or None when a dim is unknown."""
    coef, power = 1, 0
    for d in dims:
        if d is BATCH:
            power += 1
        elif is_int(d):
            coef *= d  # type: ignore[operator]
        else:
            return None
    return coef, power


def prod_dim(dims: tuple[Dim, ...]) -> Dim:
    m = monomial(dims)
    if m is None:
        return None
    coef, power = m
    if power == 0:
        return coef
    if power == 1 and coef == 1:
        return BATCH
    return None


def conv_out(size: Dim, k: int, s: int, p: int, d: int) -> Dim | Failure:
    if not is_int(size):
        return None
    padded = size + 2 * p  # type: ignore[operator]
    eff = d * (k - 1) + 1
    if padded < eff:
        return Failure("too-small", {"padded": padded, "kernel": k})
    return (padded - eff) // s + 1


def conv_transpose_out(size: Dim, k: int, s: int, p: int, op: int, d: int) -> Dim:
    if not is_int(size):
        return None
    out = (size - 1) * s - 2 * p + d * (k - 1) + op + 1  # type: ignore[operator]
    # An empty or negative map fails somewhere later, in ways that depend on the next op.
    return out if out > 0 else None


def pool_out(size: Dim, k: int, s: int, p: int, d: int, ceil_mode: bool) -> Dim:
    """torch's pooling_output_shape; may be <= 0 (the caller reports it)."""
    if not is_int(size):
        return None
    num = size + 2 * p - d * (k - 1) - 1 + ((s - 1) if ceil_mode else 0)  # type: ignore[operator]
    out = num // s + 1
    if ceil_mode and (out - 1) * s >= size + p:  # type: ignore[operator]
        out -= 1
    return out


def norm_index(i: int, rank: int) -> int | None:
    if -rank <= i < rank:
        return i % rank
    return None


def flatten(dims: tuple[Dim, ...], start: int, end: int) -> tuple[Dim, ...] | None:
    rank = len(dims)
    if rank == 0:
        return (1,)
    a, b = norm_index(start, rank), norm_index(end, rank)
    if a is None or b is None or a > b:
        return None
    return dims[:a] + (prod_dim(dims[a : b + 1]),) + dims[b + 1 :]


def view(dims: tuple[Dim, ...], target: list[Dim | int], batch_value: int | None) -> tuple[tuple[Dim, ...], Failure | None]:
    """``x.view(*target)``: the new dims, and a Failure when torch rejects it
    (or when it silently changes the batch size).

    ``target`` holds ints (-1 included), BATCH (``x.size(0)``) or None.
    """
    minus = [i for i, t in enumerate(target) if t == -1 and is_int(t)]
    if len(minus) > 1:
        return tuple(None for _ in target), None
    total = monomial(dims)
    known_target = tuple(t for t in target if not (is_int(t) and t == -1))
    tgt = monomial(known_target)  # type: ignore[arg-type]
    out: list[Dim] = [None if (is_int(t) and t == -1) else t for t in target]
    if total is None or tgt is None:
        return tuple(out), None
    coef_s, pow_s = total
    coef_t, pow_t = tgt
    if not minus:
        if (coef_s, pow_s) == (coef_t, pow_t):
            return tuple(out), None
        if pow_s == pow_t:
            return tuple(out), Failure("view-size", _view_info(dims, target, coef_s, pow_s, coef_t, batch_value))
        return tuple(out), None
    at = minus[0]
    if coef_t == 0:
        return tuple(out), None
    if pow_s == pow_t:
        if coef_s % coef_t:
            return tuple(out), Failure("view-size", _view_info(dims, target, coef_s, pow_s, coef_t, batch_value))
        out[at] = coef_s // coef_t
        return tuple(out), None
    if pow_s == pow_t + 1:
        if coef_s == coef_t:
            out[at] = BATCH
            return tuple(out), None
        if at == 0 and dims and dims[0] is BATCH:
            if coef_t in _suffix_products(dims[1:]):
                # (B, T, H).view(-1, H): merging the batch with leading dims on purpose.
                return tuple(out), None
            info = _view_info(dims, target, coef_s, pow_s, coef_t, batch_value)
            # The per-sample features, and what the -1 dim becomes.
            info["features"] = coef_s
            info["size"] = coef_t
            return tuple(out), Failure("view-batch", info)
    return tuple(out), None


def _suffix_products(dims: tuple[Dim, ...]) -> set[int]:
    """Products of the trailing dims: (16, 5, 5) -> {5, 25, 400}."""
    out: set[int] = set()
    p = 1
    for d in reversed(dims):
        if not is_int(d):
            break
        p *= d  # type: ignore[operator]
        out.add(p)
    return out


def _view_info(dims, target, coef_s, pow_s, coef_t, batch_value) -> dict[str, Any]:
    b = batch_value if pow_s else 1
    info: dict[str, Any] = {"features": coef_s, "size": coef_t, "target": list(target)}
    if b is not None:
        numel = coef_s * (b ** pow_s)
        info["numel"] = numel
        info["batch"] = b
        known = coef_t * ((b ** 1) if any(t is BATCH for t in target) else 1)
        if any(is_int(t) and t == -1 for t in target):
            info["divides"] = numel % known == 0 if known else False
            if info["divides"]:
                info["new_batch"] = numel // known
        else:
            info["divides"] = False
    return info


def broadcast(a: tuple[Dim, ...], b: tuple[Dim, ...]) -> tuple[Dim, ...] | None:
    out: list[Dim] = []
    for i in range(1, max(len(a), len(b)) + 1):
        x = a[-i] if i <= len(a) else 1
        y = b[-i] if i <= len(b) else 1
        if x == 1:
            out.append(y)
        elif y == 1 or x == y:
            out.append(x)
        else:
            return None
    return tuple(reversed(out))


def reduce_dims(dims: tuple[Dim, ...], axes: Any, keepdim: bool) -> tuple[Dim, ...] | None:
    rank = len(dims)
    if axes is None:
        return tuple(1 for _ in dims) if keepdim else ()
    if is_int(axes):
        axes = (axes,)
    if not isinstance(axes, (tuple, list)) or not all(is_int(a) for a in axes):
        return None
    idx = set()
    for a in axes:
        n = norm_index(a, rank)
        if n is None:
            return None
        idx.add(n)
    if keepdim:
        return tuple(1 if i in idx else d for i, d in enumerate(dims))
    return tuple(d for i, d in enumerate(dims) if i not in idx)


def index(dims: tuple[Dim, ...], elements: list[Any]) -> tuple[Dim, ...] | None:
    """Basic indexing: ints, slices (as ("slice", lo, hi, step)), None, Ellipsis."""
    n_consuming = sum(1 for e in elements if e is not None and e is not Ellipsis)
    if sum(1 for e in elements if e is Ellipsis) > 1 or n_consuming > len(dims):
        return None
    if Ellipsis in elements:
        at = elements.index(Ellipsis)
        fill = len(dims) - n_consuming
        elements = elements[:at] + [("slice", None, None, None)] * fill + elements[at + 1 :]
    out: list[Dim] = []
    pos = 0
    for e in elements:
        if e is None:
            out.append(1)
            continue
        if pos >= len(dims):
            return None
        d = dims[pos]
        pos += 1
        if is_int(e):
            if is_int(d) and not (-d <= e < d):  # type: ignore[operator]
                return None
            continue
        if isinstance(e, tuple) and e and e[0] == "slice":
            _, lo, hi, step = e
            if lo is None and hi is None and step is None:
                out.append(d)
            elif is_int(d) and all(v is None or is_int(v) for v in (lo, hi, step)):
                out.append(len(range(d)[slice(lo, hi, step)]))  # type: ignore[arg-type]
            else:
                out.append(None)
            continue
        return None
    out.extend(dims[pos:])
    return tuple(out)


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


__all__ = [
    "Failure",
    "as_dim",
    "broadcast",
    "conv_out",
    "conv_transpose_out",
    "flatten",
    "index",
    "int_or_none",
    "math",
    "monomial",
    "pool_out",
    "prod_dim",
    "reduce_dims",
    "tuple_n",
    "view",
]
