"""torch.nn layers: their constructor signatures and what they do to a shape."""

from __future__ import annotations

from typing import Any

import libcst as cst

from torchlint.shapes import ops
from torchlint.shapes.ops import Failure
from torchlint.shapes.values import BATCH, UNKNOWN, Dim, LayerV, is_int

_CONV = ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups", "bias", "padding_mode", "device", "dtype")
_CONVT = ("in_channels", "out_channels", "kernel_size", "stride", "padding", "output_padding", "groups", "bias", "dilation", "padding_mode", "device", "dtype")
_MAXPOOL = ("kernel_size", "stride", "padding", "dilation", "return_indices", "ceil_mode")
_AVGPOOL = ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override")
_BN = ("num_features", "eps", "momentum", "affine", "track_running_stats", "device", "dtype")
_RNN_TAIL = ("bias", "batch_first", "dropout", "bidirectional")

SIGNATURES: dict[str, tuple[str, ...]] = {
    "Linear": ("in_features", "out_features", "bias", "device", "dtype"),
    "LazyLinear": ("out_features", "bias", "device", "dtype"),
    "Flatten": ("start_dim", "end_dim"),
    "Embedding": ("num_embeddings", "embedding_dim", "padding_idx", "max_norm", "norm_type", "scale_grad_by_freq", "sparse", "_weight", "_freeze", "device", "dtype"),
    "LayerNorm": ("normalized_shape", "eps", "elementwise_affine", "bias", "device", "dtype"),
    "LSTM": ("input_size", "hidden_size", "num_layers") + _RNN_TAIL + ("proj_size", "device", "dtype"),
    "GRU": ("input_size", "hidden_size", "num_layers") + _RNN_TAIL + ("device", "dtype"),
    "RNN": ("input_size", "hidden_size", "num_layers", "nonlinearity") + _RNN_TAIL + ("device", "dtype"),
    "Softmax": ("dim",),
    "LogSoftmax": ("dim",),
}
for _n in (1, 2, 3):
    SIGNATURES[f"Conv{_n}d"] = _CONV
    SIGNATURES[f"ConvTranspose{_n}d"] = _CONVT
    SIGNATURES[f"MaxPool{_n}d"] = _MAXPOOL
    SIGNATURES[f"AvgPool{_n}d"] = _AVGPOOL if _n > 1 else _AVGPOOL[:-1]
    SIGNATURES[f"AdaptiveAvgPool{_n}d"] = ("output_size",)
    SIGNATURES[f"AdaptiveMaxPool{_n}d"] = ("output_size", "return_indices")
    SIGNATURES[f"BatchNorm{_n}d"] = _BN

# Layers whose output has the input's shape (arguments do not matter here).
ELEMENTWISE = frozenset(
    """ReLU ReLU6 LeakyReLU PReLU ELU SELU CELU GELU SiLU Mish Sigmoid Tanh Hardtanh Hardswish
    Hardsigmoid Softplus Softsign Softshrink Hardshrink Tanhshrink Threshold LogSigmoid
    Dropout Dropout1d Dropout2d Dropout3d AlphaDropout FeatureAlphaDropout Identity Softmax
    LogSoftmax Softmax2d Softmin InstanceNorm1d InstanceNorm2d InstanceNorm3d GroupNorm
    LocalResponseNorm""".split()
)

# The RuntimeError each failure kind raises (fragments separated by " … ").
SPATIAL = {"1d": 1, "2d": 2, "3d": 3}


def spatial_rank(kind: str) -> int:
    return SPATIAL.get(kind[-2:], 0)


def bind_args(kind: str, args: list[tuple[Any, cst.BaseExpression | None]], kwargs: dict[str, tuple[Any, cst.BaseExpression | None]]):
    """Positional + keyword arguments -> {param: value}, {param: source expr}; None if they do not fit."""
    sig = SIGNATURES.get(kind)
    if sig is None:
        return {}, {}
    if len(args) > len(sig) or any(k not in sig for k in kwargs):
        return None
    params: dict[str, Any] = {}
    nodes: dict[str, cst.BaseExpression] = {}
    for name, (value, node) in zip(sig, args):
        params[name] = value
        if node is not None:
            nodes[name] = node
    for name, (value, node) in kwargs.items():
        if name in params:
            return None
        params[name] = value
        if node is not None:
            nodes[name] = node
    return params, nodes


def layer_kind(qualname: str) -> str | None:
    if not qualname.startswith("torch.nn."):
        return None
    last = qualname.rsplit(".", 1)[-1]
    if qualname.startswith("torch.nn.functional.") or qualname.startswith("torch.nn.utils.") or qualname.startswith("torch.nn.init."):
        return None
    if not last[:1].isupper():
        return None
    return last


def _show(v: Any) -> str:
    """An argument as written: ``?`` where it is not known."""
    if v is UNKNOWN:
        return "?"
    if isinstance(v, tuple):
        return "(" + ", ".join(_show(x) for x in v) + ("," if len(v) == 1 else "") + ")"
    return repr(v) if isinstance(v, str) else str(v)


def describe(layer: LayerV) -> str:
    """``Linear(256, 120)``: the layer with its shape-relevant arguments."""
    p = layer.params
    k = layer.kind
    if k in ("Linear",):
        args = [p.get("in_features", UNKNOWN), p.get("out_features", UNKNOWN)]
    elif k.startswith("Conv"):
        args = [p.get("in_channels", UNKNOWN), p.get("out_channels", UNKNOWN), p.get("kernel_size", UNKNOWN)]
    elif k.startswith("BatchNorm"):
        args = [p.get("num_features", UNKNOWN)]
    elif k in ("LSTM", "GRU", "RNN"):
        args = [p.get("input_size", UNKNOWN), p.get("hidden_size", UNKNOWN)]
    elif k.startswith(("MaxPool", "AvgPool")):
        args = [p.get("kernel_size", UNKNOWN)]
        if "stride" in p:
            return f"{k}({_show(args[0])}, stride={_show(p['stride'])})"
    elif k == "LayerNorm":
        args = [p.get("normalized_shape", UNKNOWN)]
    else:
        return k
    return f"{k}({', '.join(_show(a) for a in args)})"


class Applier:
    """Applies a layer to a tensor shape. ``fail`` records a certain error and
    returns nothing; the layer's output is then computed as if its input were
    unknown, so later, independent errors are still found."""

    def __init__(self, batch_value: int | None) -> None:
        self.batch_value = batch_value

    # Each returns (out_dims, open, failure)
    def apply(self, layer: LayerV, dims: tuple[Dim, ...], open_: bool) -> tuple[Any, bool, Failure | None]:
        k = layer.kind
        p = layer.params
        if k in ELEMENTWISE:
            return dims, open_, None
        if k == "Linear" or k == "LazyLinear":
            out_f = p.get("out_features", UNKNOWN)
            out_d = out_f if is_int(out_f) else None
            in_f = p.get("in_features", UNKNOWN) if k == "Linear" else UNKNOWN
            if not dims:
                return ((out_d,), True, None) if open_ else (UNKNOWN, False, None)
            last = dims[-1]
            if is_int(in_f) and is_int(last) and last != in_f:
                return dims[:-1] + (out_d,), open_, Failure("linear-features", {"expected": in_f, "got": last})
            return dims[:-1] + (out_d,), open_, None
        if k == "Flatten":
            start, end = p.get("start_dim", 1), p.get("end_dim", -1)
            if open_ or not (is_int(start) and is_int(end)):
                return UNKNOWN, False, None
            out = ops.flatten(dims, start, end)
            return (out, False, None) if out is not None else (UNKNOWN, False, None)
        if k.startswith(("Conv", "MaxPool", "AvgPool", "AdaptiveAvgPool", "AdaptiveMaxPool", "BatchNorm")):
            return self._spatial(layer, dims, open_)
        if k == "LayerNorm":
            ns = p.get("normalized_shape", UNKNOWN)
            shape = (ns,) if is_int(ns) else tuple(ns) if isinstance(ns, (tuple, list)) and all(is_int(x) for x in ns) else None
            if shape is None or len(dims) < len(shape):
                return dims, open_, None
            tail = dims[len(dims) - len(shape):]
            if all(is_int(d) for d in tail) and tuple(tail) != shape:
                failure = Failure("layernorm", {"expected": list(shape), "got": list(dims)})
                return dims[: len(dims) - len(shape)] + shape, open_, failure
            return dims, open_, None
        if k == "Embedding":
            dim = p.get("embedding_dim", UNKNOWN)
            return dims + (dim if is_int(dim) else None,), open_, None
        if k in ("LSTM", "GRU", "RNN"):
            return self._rnn(layer, dims, open_)
        return UNKNOWN, False, None

    def _spatial(self, layer: LayerV, dims: tuple[Dim, ...], open_: bool):
        k = layer.kind
        p = layer.params
        s = spatial_rank(k)
        if s == 0:
            return UNKNOWN, False, None
        if open_:
            # An unknown input is taken as batched (rank s+2), its leading dim unknown, not the batch.
            if k.startswith("BatchNorm") and s == 1:
                # BatchNorm1d takes (N, C) or (N, C, L): which dim is C is unknown here.
                return dims, True, None
            dims = ((None,) * (s + 2 - len(dims)) + dims) if len(dims) < s + 2 else dims[-(s + 2):]
            open_ = False
        rank = len(dims)
        if k.startswith("BatchNorm"):
            nf = p.get("num_features", UNKNOWN)
            ranks = (2, 3) if s == 1 else (s + 2,)
            if rank not in ranks:
                return dims, False, Failure("norm-rank", {"expected": ranks, "got": rank})
            c = dims[1]
            cv = ops.int_or_none(c)
            if is_int(nf) and cv is not None and cv != nf:
                return dims, False, Failure("norm-features", {"expected": nf, "got": cv})
            return dims, False, None
        if rank not in (s + 1, s + 2):
            if k.startswith(("Conv", "MaxPool", "AvgPool")) or (k.startswith("Adaptive") and rank < s):
                return UNKNOWN, False, Failure("rank", {"expected": (s + 1, s + 2), "got": rank, "spatial": s})
            return UNKNOWN, False, None
        lead = dims[: rank - s - 1]
        c = dims[rank - s - 1]
        spatial = dims[rank - s :]
        if k.startswith("Adaptive"):
            out = ops.tuple_n(p.get("output_size", UNKNOWN), s)
            osz = p.get("output_size", UNKNOWN)
            if out is None and isinstance(osz, (tuple, list)) and len(osz) == s:
                out = tuple(o if is_int(o) else (spatial[i] if o is None else None) for i, o in enumerate(osz))
            if out is None:
                out = (None,) * s
            return lead + (c,) + tuple(out), False, None
        if k.startswith(("Conv", "ConvTranspose")):
            transpose = k.startswith("ConvTranspose")
            in_c, out_c = p.get("in_channels", UNKNOWN), p.get("out_channels", UNKNOWN)
            groups = p.get("groups", 1)
            cv = ops.int_or_none(c, self.batch_value if rank == s + 1 else None)
            c_out = out_c if is_int(out_c) else None
            failure = None
            if is_int(in_c) and cv is not None and cv != in_c:
                failure = Failure("conv-channels", {"expected": in_c, "got": cv, "groups": groups})
            ksz = ops.tuple_n(p.get("kernel_size", UNKNOWN), s)
            stride = ops.tuple_n(p.get("stride", 1), s)
            dil = ops.tuple_n(p.get("dilation", 1), s)
            pad_v = p.get("padding", 0)
            if ksz is None or stride is None or dil is None:
                return lead + (c_out,) + (None,) * s, False, failure
            if transpose:
                pad = ops.tuple_n(pad_v, s)
                opad = ops.tuple_n(p.get("output_padding", 0), s)
                if pad is None or opad is None:
                    return lead + (c_out,) + (None,) * s, False, failure
                new = tuple(ops.conv_transpose_out(spatial[i], ksz[i], stride[i], pad[i], opad[i], dil[i]) for i in range(s))
                return lead + (c_out,) + new, False, failure
            if pad_v == "same":
                return lead + (c_out,) + spatial, False, failure
            pad = (0,) * s if pad_v == "valid" else ops.tuple_n(pad_v, s)
            if pad is None:
                return lead + (c_out,) + (None,) * s, False, failure
            new_sp: list[Dim] = []
            for i in range(s):
                o = ops.conv_out(spatial[i], ksz[i], stride[i], pad[i], dil[i])
                if isinstance(o, Failure):
                    if failure is None:
                        failure = Failure("conv-too-small", {
                            "padded": [spatial[j] + 2 * pad[j] if is_int(spatial[j]) else None for j in range(s)],
                            "kernel": list(ksz), "input": list(spatial),
                        })
                    new_sp.append(None)
                else:
                    new_sp.append(o)
            return lead + (c_out,) + tuple(new_sp), False, failure
        # MaxPool / AvgPool
        ksz = ops.tuple_n(p.get("kernel_size", UNKNOWN), s)
        st_v = p.get("stride", None)
        stride = ksz if st_v is None or (isinstance(st_v, (tuple, list)) and len(st_v) == 0) else ops.tuple_n(st_v, s)
        pad = ops.tuple_n(p.get("padding", 0), s)
        dil = ops.tuple_n(p.get("dilation", 1), s) if k.startswith("MaxPool") else (1,) * s
        ceil = p.get("ceil_mode", False)
        if ksz is None or stride is None or pad is None or dil is None or not isinstance(ceil, bool):
            return lead + (c,) + (None,) * s, False, None
        if any(pad[i] * 2 > ksz[i] for i in range(s)):
            return lead + (c,) + (None,) * s, False, None
        new_sp = []
        too_small = False
        for i in range(s):
            o = ops.pool_out(spatial[i], ksz[i], stride[i], pad[i], dil[i], ceil)
            if is_int(o) and o <= 0:  # type: ignore[operator]
                too_small = True
            new_sp.append(o)
        if too_small:
            return lead + (c,) + (None,) * s, False, Failure("pool-too-small", {
                "input": [c] + list(spatial), "output": [c] + list(new_sp),
            })
        return lead + (c,) + tuple(new_sp), False, None

    def _rnn(self, layer: LayerV, dims: tuple[Dim, ...], open_: bool):
        p = layer.params
        in_sz, hidden = p.get("input_size", UNKNOWN), p.get("hidden_size", UNKNOWN)
        proj = p.get("proj_size", 0)
        bidir = p.get("bidirectional", False)
        if not isinstance(bidir, bool) or not (is_int(proj)):
            return UNKNOWN, False, None
        h = proj if is_int(proj) and proj > 0 else hidden
        out_f = h * (2 if bidir else 1) if is_int(h) else None
        if not dims:
            return ((out_f,), True, None) if open_ else (UNKNOWN, False, None)
        last = dims[-1]
        failure = None
        if is_int(in_sz) and is_int(last) and last != in_sz:
            failure = Failure("rnn-features", {"expected": in_sz, "got": last})
        if open_ or len(dims) not in (2, 3):
            return dims[:-1] + (out_f,), open_, failure
        return dims[:-1] + (out_f,), False, failure


def rnn_hidden_dims(layer: LayerV, dims: tuple[Dim, ...]) -> tuple[Dim, ...] | None:
    """h_n's shape: (num_layers * directions, batch, hidden)."""
    p = layer.params
    n, hidden, bf = p.get("num_layers", 1), p.get("hidden_size", UNKNOWN), p.get("batch_first", False)
    bidir = p.get("bidirectional", False)
    if not (is_int(n) and is_int(hidden) and isinstance(bf, bool) and isinstance(bidir, bool)):
        return None
    proj = p.get("proj_size", 0)
    h = proj if is_int(proj) and proj > 0 else hidden
    first = n * (2 if bidir else 1)
    if len(dims) == 2:
        return (first, h)
    if len(dims) != 3:
        return None
    batch = dims[0] if bf else dims[1]
    return (first, batch, h)


__all__ = ["Applier", "ELEMENTWISE", "SIGNATURES", "bind_args", "describe", "layer_kind", "rnn_hidden_dims", "BATCH"]
