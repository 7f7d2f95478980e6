"""Facts about training-loop code shared by TL101 and TL401.

Each helper answers from syntax plus import resolution only, and says "don't
know" (None / False) whenever the code does not show the answer: the rules
stay silent on those.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import libcst as cst

from torchlint.walk import children as _children

from torchlint.names import dotted_name, target_names

__all__ = [
    "DERIVING_METHODS",
    "calls_in",
    "dotted_name",
    "is_backward",
    "is_dtype_expr",
    "is_loss_function_qualname",
    "is_scheduler_qualname",
    "is_torch_optimizer_qualname",
    "is_zero_grad",
    "last_part",
    "literal_string",
    "looks_like_loss_name",
    "looks_like_optimizer_name",
    "params_overlap",
    "step_call_text",
    "stepped_optimizer",
    "target_names",
]

# opt, optim, optimizer, optimiser, optG, opt_d, g_optim, optimizer_D, gen_opt, opt2 ...
_OPT_TOKEN = re.compile(r"(?:^|_)(?:opt|optim)(?:[gd]|_?\d+)?(?:$|_)")


def last_part(dotted: str) -> str:
    return dotted.rsplit(".", 1)[-1]


def looks_like_optimizer_name(dotted: str) -> bool:
    """Is the last identifier of ``dotted`` a conventional optimizer name?

    Deliberately narrow: ``optimizer``/``optimiser`` anywhere in the name, or an
    ``opt``/``optim`` token, and nothing that mentions a scheduler or a
    learning rate (``opt_scheduler.step()`` steps a schedule, not weights).
    """
    name = last_part(dotted).lower()
    if "sched" in name or "lr" in name.split("_") or "warmup" in name:
        return False
    return "optimizer" in name or "optimiser" in name or bool(_OPT_TOKEN.search(name))


def is_torch_optimizer_qualname(qual: str | None) -> bool:
    if not qual:
        return False
    if not qual.startswith(("torch.optim.", "torch.distributed.optim.")):
        return False
    if "lr_scheduler" in qual or "swa_utils" in qual:
        return False
    return last_part(qual)[:1].isupper()


def is_scheduler_qualname(qual: str | None) -> bool:
    """Known objects with a ``.step()`` that is not an optimizer step."""
    if not qual:
        return False
    low = qual.lower()
    return "sched" in low or "swa_utils" in low or low.endswith("gradscaler") or "warmup" in low


LOSS_FUNCTIONS = frozenset(
    {
        "binary_cross_entropy",
        "binary_cross_entropy_with_logits",
        "cosine_embedding_loss",
        "cross_entropy",
        "ctc_loss",
        "gaussian_nll_loss",
        "hinge_embedding_loss",
        "huber_loss",
        "kl_div",
        "l1_loss",
        "margin_ranking_loss",
        "mse_loss",
        "multi_margin_loss",
        "multilabel_margin_loss",
        "multilabel_soft_margin_loss",
        "nll_loss",
        "poisson_nll_loss",
        "smooth_l1_loss",
        "soft_margin_loss",
        "triplet_margin_loss",
        "triplet_margin_with_distance_loss",
    }
)

_LOSS_NAME = re.compile(r"^(?:criterion\w*|\w*_criterion|loss_?fn\w*|\w*_loss_?fn|loss_?func(?:tion)?\w*|\w*_loss_?func(?:tion)?)$")


def is_loss_function_qualname(qual: str | None) -> bool:
    if not qual:
        return False
    if qual.startswith("torch.nn.functional."):
        return last_part(qual) in LOSS_FUNCTIONS
    # nn.CrossEntropyLoss(...) and friends (the construction, not a call of it).
    return qual.startswith("torch.nn.") and last_part(qual).endswith("Loss")


def looks_like_loss_name(dotted: str) -> bool:
    return bool(_LOSS_NAME.match(last_part(dotted).lower()))


_DTYPES = frozenset(
    {
        "float", "float16", "float32", "float64", "bfloat16", "half", "double", "int", "int8", "int16",
        "int32", "int64", "long", "short", "uint8", "bool", "complex64", "complex128", "cfloat", "cdouble",
        "float8_e4m3fn", "float8_e5m2",
    }
)


def is_dtype_expr(expr: cst.BaseExpression, qualname) -> bool:
    """``torch.float16``, ``dtype`` and the like: a ``.to()`` argument that is not a device."""
    q = qualname(expr)
    if q is not None and q.startswith("torch.") and last_part(q) in _DTYPES:
        return True
    d = dotted_name(expr)
    return d is not None and "dtype" in last_part(d).lower()


def literal_string(expr: cst.BaseExpression) -> str | None:
    if isinstance(expr, cst.SimpleString):
        try:
            value = expr.evaluated_value
        except Exception:  # noqa: BLE001 - malformed literal: not a known string
            return None
        return value if isinstance(value, str) else None
    return None


# Tensor methods that return a tensor on the same device as their receiver.
DERIVING_METHODS = frozenset(
    {
        "view", "reshape", "float", "double", "half", "bfloat16", "long", "int", "short", "bool", "byte",
        "squeeze", "unsqueeze", "permute", "transpose", "flatten", "contiguous", "clone", "detach",
        "requires_grad_", "t", "expand", "expand_as", "repeat", "view_as", "reshape_as", "narrow", "flip",
        "type_as", "sub", "add", "mul", "div", "abs", "sqrt", "exp", "log", "sigmoid", "softmax",
        "log_softmax", "argmax", "argmin", "sum", "mean", "max", "min", "masked_fill", "unflatten",
        "movedim", "swapaxes", "squeeze_", "unsqueeze_",
    }
)


def calls_in(node: cst.CSTNode) -> Iterator[cst.Call]:
    """Calls evaluated when ``node`` runs: not those in lambdas, comprehensions or nested defs."""
    stack: list[cst.CSTNode] = [node]
    while stack:
        cur = stack.pop()
        if isinstance(cur, (cst.Lambda, cst.FunctionDef, cst.ClassDef, cst.ListComp, cst.SetComp, cst.DictComp, cst.GeneratorExp)):
            continue
        if isinstance(cur, cst.Call):
            yield cur
        stack.extend(reversed(_children(cur)))




# -- optimizer steps and gradient clearing (TL101, and the step-order rules to come) --


def stepped_optimizer(call: cst.Call, qualname, receiver_is_scaler: bool = False) -> str | None:
    """The optimizer a step call steps: ``opt`` for ``opt.step()``, ``scaler.step(opt)``,
    ``xm.optimizer_step(opt)``; None for ``opt.step(closure)`` (LBFGS) or no step at all."""
    func = call.func
    if not (isinstance(func, cst.Attribute) and func.attr.value in ("step", "optimizer_step")):
        return None
    receiver = dotted_name(func.value)
    args = [a for a in call.args if a.keyword is None]
    if func.attr.value == "optimizer_step":
        return dotted_name(args[0].value) if args else None  # torch_xla's xm.optimizer_step(optimizer)
    if not call.args:
        return receiver
    if receiver is None or not args:
        return None
    qual = qualname(func.value) or ""
    if "scaler" in last_part(receiver).lower() or qual.endswith("GradScaler") or receiver_is_scaler:
        return dotted_name(args[0].value)
    return None


def is_zero_grad(call: cst.Call) -> bool:
    return isinstance(call.func, cst.Attribute) and "zero_grad" in call.func.attr.value


def is_backward(call: cst.Call) -> bool:
    return isinstance(call.func, cst.Attribute) and call.func.attr.value == "backward"


def step_call_text(call: cst.Call) -> str:
    """``optimizer.step()`` / ``scaler.step(optimizer)`` without the arguments' clutter."""
    func = dotted_name(call.func) or "step"
    args = ", ".join(d for a in call.args if (d := dotted_name(a.value)) is not None)
    return f"{func}({args})"


def params_overlap(a: str, b: str) -> bool:
    """``model`` and ``model.head`` share parameters; ``netG`` and ``netD`` do not."""
    return a == b or a.startswith(b + ".") or b.startswith(a + ".")
