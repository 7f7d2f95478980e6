"""A simulated CUDA device, so that device bugs are confirmable without a GPU.

Inside ``with simulate_device("cuda"):`` tensors and modules can be moved to
"cuda"; the arithmetic still happens on the CPU, but every tensor remembers
the device it *would* be on, and an operation that mixes devices raises the
error PyTorch raises on a real GPU, e.g.::

    RuntimeError: Expected all tensors to be on the same device, but found
    at least two devices, cuda:0 and cpu!

How it works:

* The simulated device is recorded on the tensor's *storage* (CPU storages
  carry no tag). Views, ``.data``, ``.detach()``, ``nn.Parameter`` and
  ``param.data = other`` (what ``Module._apply`` does) all share storage, so
  they agree without further work. Moving to another device makes a copy, as
  it would on real hardware.
* A ``TorchFunctionMode`` handles the Python-level API: ``Tensor.to/cuda/
  cpu/type``, ``device=`` arguments of factories, ``Tensor.device``/
  ``is_cuda``/``get_device``, ``.numpy()`` of a CUDA tensor, ``repr``.
* A ``TorchDispatchMode`` sees every ATen operator, including those run by
  autograd and by optimizers: it checks the devices of the operands the way
  the CUDA kernels do (and with their messages), and tags fresh outputs.
  Which check an operator gets (TensorIterator's, which tolerates CPU
  scalars, or the generated per-argument one, whose message names the
  argument and the CUDA wrapper) comes from the ``native_functions.yaml``
  shipped with torch; convolutions, embeddings, indexing, RNNs and
  ``pack_padded_sequence`` have their own checks, as in ATen.
* ``torch.cuda.is_available()`` and friends report one (or ``device_count``)
  device while simulating.

This module imports torch; import it only where code runs (the sandbox).
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.overrides import _get_current_function_mode_stack
from torch.utils._device import DeviceContext, _device_constructors
from torch.utils._pytree import tree_flatten, tree_map

__all__ = ["SimulatedDevice", "device_of", "is_simulating", "prepare", "simulate_device"]

_TAG = "_torchlint_simulated_device"
_CPU = torch.device("cpu")
_state = threading.local()


# --------------------------------------------------------------------------
# Operator metadata, from the native_functions.yaml that ships with torch.


@dataclass(frozen=True)
class _OpInfo:
    # device_check: NoCheck - the kernel (TensorIterator) checks devices
    # itself and tolerates CPU scalars.
    no_check: bool
    # Structured kernels get differently named CUDA wrappers.
    structured: bool
    # Has its own CUDA kernel (so the generated device check runs).
    cuda: bool


_FUNC_HEADER = re.compile(r"^- func: ", re.M)
_DISPATCH_BLOCK = re.compile(r"^\s+dispatch:\n((?:[ \t]{4,}.*\n?)*)", re.M)


@functools.lru_cache(maxsize=1)
def _op_table() -> dict[str, _OpInfo]:
    try:
        import torchgen
    except ImportError:
        return {}
    path = os.path.join(os.path.dirname(torchgen.__file__), "packaged", "ATen", "native", "native_functions.yaml")
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError:
        return {}
    # A line scanner rather than a YAML parser: 20 ms instead of seconds.
    table = {}
    for entry in _FUNC_HEADER.split(text)[1:]:
        name = entry.split("(", 1)[0].strip()
        block = _DISPATCH_BLOCK.search(entry)
        delegated = "structured_delegate:" in entry
        table[name] = _OpInfo(
            no_check="device_check: NoCheck" in entry,
            structured=delegated or bool(re.search(r"^\s+structured: True", entry, re.M)),
            cuda=delegated or bool(block and re.search(r"\bCUDA\b", block.group(1))),
        )
    return table


def prepare() -> None:
    """Pay the one-time costs now (the sandbox worker does this before forking).

    TorchDispatchMode wraps ``__torch_dispatch__`` so that its first call
    imports torch._dynamo (1.5 s); importing it here keeps that out of
    every job.
    """
    _op_table()
    import torch._dynamo  # noqa: F401


# --------------------------------------------------------------------------
# Device tags


def _storage(t: torch.Tensor):
    try:
        return t.untyped_storage()
    except (RuntimeError, NotImplementedError, TypeError):
        return None  # sparse and other storage-less tensors: tag the tensor


def _dev(t: torch.Tensor) -> torch.device:
    """The simulated device of ``t``; torch functions must be disabled."""
    real = t.device
    if real.type != "cpu":
        return real
    holder = _storage(t)
    tag = getattr(holder if holder is not None else t, _TAG, None)
    return tag if tag is not None else _CPU


def _set_dev(t: torch.Tensor, device: torch.device) -> None:
    holder = _storage(t)
    holder = holder if holder is not None else t
    if device.type == "cpu":
        if getattr(holder, _TAG, None) is not None:
            delattr(holder, _TAG)
    else:
        setattr(holder, _TAG, device)


def device_of(t: torch.Tensor) -> torch.device:
    """The device ``t`` would be on (its real device outside a simulation)."""
    with torch._C.DisableTorchFunction():
        return _dev(t)


def _shares_storage(a: torch.Tensor, b: torch.Tensor) -> bool:
    sa, sb = _storage(a), _storage(b)
    return a is b or (sa is not None and sa is sb)


def _type_name(t: torch.Tensor, device: torch.device) -> str:
    # Legacy names ("torch.cuda.FloatTensor") as in PyTorch's messages.
    name = torch.Tensor.type(t)
    if device.type == "cuda":
        name = name.replace("torch.", "torch.cuda.", 1)
    return name


# --------------------------------------------------------------------------
# The simulation


class SimulatedDevice:
    """State of one ``simulate_device`` block (what it yields)."""

    def __init__(self, device_type: str = "cuda", device_count: int = 1) -> None:
        if device_type != "cuda":
            raise ValueError(f"only 'cuda' can be simulated, not {device_type!r}")
        if device_count < 1:
            raise ValueError("device_count must be at least 1")
        self.type = device_type
        self.device_count = device_count
        self.current = 0

    def resolve(self, device: Any) -> torch.device:
        """``device`` as a torch.device, with the index of a simulated device filled in."""
        if isinstance(device, int):
            device = torch.device("cuda", device)
        elif not isinstance(device, torch.device):
            device = torch.device(device)
        if device.type != "cuda":
            return device
        index = self.current if device.index is None else device.index
        if not 0 <= index < self.device_count:
            raise RuntimeError("CUDA error: invalid device ordinal")
        return torch.device("cuda", index)

    def device_of(self, t: torch.Tensor) -> torch.device:
        return device_of(t)


def _ambient() -> torch.device | None:
    return getattr(_state, "ambient", None)


@contextlib.contextmanager
def _ambient_device(device: torch.device | None) -> Iterator[None]:
    """Device for tensors created *inside* a torch function without a device.

    The function mode is off while a torch function runs, so Python-level
    composites (``F.multi_head_attention_forward``...) see real CPU devices
    and create masks on the CPU; on a GPU they would follow their inputs.
    """
    saved = _ambient()
    _state.ambient = device
    try:
        yield
    finally:
        _state.ambient = saved


def _first_simulated(values: list[Any]) -> torch.device | None:
    for value in values:
        if isinstance(value, torch.Tensor):
            device = _dev(value)
            if device.type != "cpu":
                return device
    return None


# -- Python-level API (TorchFunctionMode) -----------------------------------


def _moved(source: torch.Tensor, out: torch.Tensor, target: torch.device) -> torch.Tensor:
    """``out`` (computed on the CPU from ``source``) as a tensor on ``target``."""
    if _dev(source) == target:
        return out
    if _shares_storage(source, out):
        # A real move copies (sharing storage would move ``source`` too);
        # _to_copy also gives the grad_fn a real move has.
        out = torch.Tensor.to(out, copy=True)
    _set_dev(out, target)
    return out


def _handle_to(sim: SimulatedDevice, func, args, kwargs):
    self, rest = args[0], args[1:]
    if rest and isinstance(rest[0], torch.Tensor):  # x.to(other, ...)
        other = rest[0]
        out = func(self, other.dtype, *rest[1:], **kwargs)
        return _moved(self, out, _dev(other))
    copy = kwargs.get("copy", False)
    parse_kwargs = {k: v for k, v in kwargs.items() if k != "copy"}
    device, dtype, non_blocking, memory_format = torch._C._nn._parse_to(*rest, **parse_kwargs)
    target = sim.resolve(device) if device is not None else _dev(self)
    real_device = None if target.type == "cuda" else device
    out = func(
        self,
        real_device,
        dtype,
        non_blocking,
        copy,
        memory_format=memory_format if memory_format is not None else torch.preserve_format,
    )
    return _moved(self, out, target)


def _handle_cuda(sim: SimulatedDevice, func, args, kwargs):
    self = args[0]
    device = args[1] if len(args) > 1 else kwargs.get("device")
    non_blocking = args[2] if len(args) > 2 else kwargs.get("non_blocking", False)
    memory_format = kwargs.get("memory_format", torch.preserve_format)
    target = sim.resolve("cuda" if device is None else device)
    out = torch.Tensor.to(self, non_blocking=non_blocking, memory_format=memory_format)
    return _moved(self, out, target)


def _handle_cpu(sim: SimulatedDevice, func, args, kwargs):
    self = args[0]
    memory_format = kwargs.get("memory_format", torch.preserve_format)
    out = torch.Tensor.to(self, memory_format=memory_format)
    return _moved(self, out, _CPU)


def _handle_type(sim: SimulatedDevice, func, args, kwargs):
    self = args[0]
    dtype = args[1] if len(args) > 1 else kwargs.get("dtype")
    if dtype is None:
        return _type_name(self, _dev(self))
    if not isinstance(dtype, str):
        return _moved(self, func(*args, **kwargs), _dev(self))
    on_cuda = dtype.startswith("torch.cuda.")
    real = dtype.replace("torch.cuda.", "torch.", 1)
    rest = {k: v for k, v in kwargs.items() if k != "dtype"}
    out = func(self, real, *args[2:], **rest)
    return _moved(self, out, sim.resolve("cuda") if on_cuda else _CPU)


def _refuse_numpy(self: torch.Tensor, force: bool = False) -> None:
    device = _dev(self)
    if device.type == "cuda" and not force:
        raise TypeError(
            f"can't convert {device} device type tensor to numpy. "
            "Use Tensor.cpu() to copy the tensor to host memory first."
        )


def _handle_numpy(sim: SimulatedDevice, func, args, kwargs):
    _refuse_numpy(args[0], bool(kwargs.get("force", False)))
    return func(*args, **kwargs)


def _handle_array(sim: SimulatedDevice, func, args, kwargs):
    _refuse_numpy(args[0])
    return func(*args, **kwargs)


def _handle_pin_memory(sim: SimulatedDevice, func, args, kwargs):
    self = args[0]
    if _dev(self).type == "cuda":
        raise RuntimeError(f"cannot pin '{_type_name(self, _dev(self))}' only dense CPU tensors can be pinned")
    # Pinning needs a real accelerator; pinned memory is ordinary CPU memory.
    return self.clone()


def _handle_get_device(sim: SimulatedDevice, func, args, kwargs):
    device = _dev(args[0])
    return device.index if device.type == "cuda" else func(*args, **kwargs)


def _handle_repr(sim: SimulatedDevice, func, args, kwargs):
    text = func(*args, **kwargs)
    device = _dev(args[0])
    if device.type != "cuda":
        return text
    # PyTorch puts device= first among the suffixes after the data.
    suffix = re.search(r",\s*(?:size|dtype|grad_fn|requires_grad|layout)=", text)
    at = suffix.start() if suffix else text.rstrip().rfind(")")
    return f"{text[:at]}, device='{device}'{text[at:]}"


def _handle_deepcopy(sim: SimulatedDevice, func, args, kwargs):
    out = func(*args, **kwargs)
    for source, copy in ((args[0], out), (args[0].grad, getattr(out, "grad", None))):
        if isinstance(source, torch.Tensor) and isinstance(copy, torch.Tensor):
            _set_dev(copy, _dev(source))
    return out


def _handle_record_stream(sim: SimulatedDevice, func, args, kwargs):
    if _dev(args[0]).type == "cuda":
        return None  # no streams to synchronize with on the CPU
    return func(*args, **kwargs)


def _handle_rnn(sim: SimulatedDevice, func, args, kwargs):
    # torch.lstm/gru/rnn_*: (input, hx, params, ...) or, packed,
    # (data, batch_sizes, hx, params, ...).
    if len(args) > 3 and isinstance(args[3], (list, tuple)):
        data, hx, params = args[0], args[2], args[3]
    else:
        data, hx, params = args[0], args[1], args[2]
    hiddens = list(hx) if isinstance(hx, (list, tuple)) else [hx]
    device = _dev(data)
    if device.type == "cuda" and torch.backends.cudnn.enabled and data.is_floating_point():
        # A CUDA input takes the cuDNN path: _cudnn_rnn's generated check.
        operands = [("input", data, True, False)]
        operands += [("weight", p, True, False) for p in params]
        operands += [(name, h, True, False) for name, h in zip(("hx", "cx"), hiddens)]
        _check_common_device(operands, "wrapper_CUDA___cudnn_rnn")
    else:
        # Otherwise the native implementation's check_attributes.
        for label, tensors in (("hidden", hiddens), ("parameter", params)):
            for tensor in tensors:
                if _dev(tensor) != device:
                    raise RuntimeError(
                        f"Input and {label} tensors are not at the same device, found input tensor at "
                        f"{device} and {label} tensor at {_dev(tensor)}"
                    )
    with _ambient_device(device if device.type != "cpu" else None):
        return func(*args, **kwargs)


def _getter(attribute: str) -> Callable:
    def handle(sim: SimulatedDevice, func, args, kwargs):
        device = _dev(args[0])
        if attribute == "device":
            return device
        return device.type == attribute

    return handle


_FUNCTION_HANDLERS: dict[Any, Callable] = {
    torch.Tensor.to: _handle_to,
    torch.Tensor.cuda: _handle_cuda,
    torch.Tensor.cpu: _handle_cpu,
    torch.Tensor.type: _handle_type,
    torch.Tensor.numpy: _handle_numpy,
    torch.Tensor.__array__: _handle_array,
    torch.Tensor.pin_memory: _handle_pin_memory,
    torch.Tensor.get_device: _handle_get_device,
    torch.Tensor.__repr__: _handle_repr,
    torch.Tensor.__deepcopy__: _handle_deepcopy,
    torch.Tensor.record_stream: _handle_record_stream,
    torch.lstm: _handle_rnn,
    torch.gru: _handle_rnn,
    torch.rnn_tanh: _handle_rnn,
    torch.rnn_relu: _handle_rnn,
    torch.Tensor.device.__get__: _getter("device"),
    torch.Tensor.is_cuda.__get__: _getter("cuda"),
    torch.Tensor.is_cpu.__get__: _getter("cpu"),
}

_NEW_METHODS = frozenset(
    {"new", "new_tensor", "new_empty", "new_empty_strided", "new_zeros", "new_ones", "new_full"}
)


def _default_cuda_device() -> torch.device | None:
    # torch.get_default_device() would create a tensor to find the index.
    for mode in reversed(_get_current_function_mode_stack()):
        if isinstance(mode, DeviceContext):
            return mode.device if mode.device.type == "cuda" else None
    context = getattr(torch._GLOBAL_DEVICE_CONTEXT, "device_context", None)
    if context is not None and context.device.type == "cuda":
        return context.device
    return None


class _FunctionMode(TorchFunctionMode):
    def __init__(self, sim: SimulatedDevice) -> None:
        super().__init__()
        self.sim = sim

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        handler = _FUNCTION_HANDLERS.get(func)
        if handler is not None:
            return handler(self.sim, func, args, kwargs)
        device = kwargs.get("device")
        if (
            device is None
            and args
            and isinstance(args[0], torch.Tensor)
            and getattr(func, "__name__", "") in _NEW_METHODS
        ):
            device = _dev(args[0])  # x.new_tensor(...) follows x
        if device is None and func in _device_constructors():
            # torch.set_default_device("cuda") fills in device= below this
            # mode, where the CPU-only build would reject it.
            device = _default_cuda_device()
        if device is not None:
            return self._create_on(func, args, kwargs, self.sim.resolve(device))
        flat, _ = tree_flatten((args, kwargs))
        with _ambient_device(_first_simulated(flat) or _ambient()):
            return func(*args, **kwargs)

    def _create_on(self, func, args, kwargs, target: torch.device):
        if target.type != "cuda":
            with _ambient_device(None):
                return func(*args, **kwargs)
        kwargs = dict(kwargs)
        if "device" in kwargs or func in _device_constructors():
            kwargs["device"] = "cpu"  # explicit, or a DeviceContext would fill in cuda
        if kwargs.get("pin_memory"):
            kwargs["pin_memory"] = False  # no accelerator to pin for
        with _ambient_device(target):
            out = func(*args, **kwargs)
        inputs = [a for a in tree_flatten((args, kwargs))[0] if isinstance(a, torch.Tensor)]

        def place(value):
            if not isinstance(value, torch.Tensor):
                return value
            for source in inputs:
                if _shares_storage(source, value):
                    return _moved(source, value, target)  # torch.as_tensor(x, device=...)
            _set_dev(value, target)
            return value

        return tree_map(place, out)


# -- ATen level (TorchDispatchMode) ------------------------------------------

# Operators that legitimately take tensors on different devices.
_CROSS_DEVICE = frozenset(
    {
        "copy_",
        "_copy_from",
        "_copy_from_and_resize",
        "_to_copy",
        "to",
        "set_",
        "lift_fresh",
        "lift_fresh_copy",
        "is_set_to",
        "is_same_size",
        "_has_compatible_shallow_copy_type",
        "_local_scalar_dense",
        "resize_as_",
    }
)
_INDEXING = frozenset({"index", "_unsafe_index", "index_put", "index_put_", "_index_put_impl_", "_unsafe_index_put"})
_CONVOLUTIONS = frozenset(
    {"convolution", "_convolution", "convolution_overrideable", "_slow_conv2d_forward", "mkldnn_convolution"}
)


def _same_device_error(common: torch.device, other: torch.device) -> RuntimeError:
    # TensorIterator's check (elementwise ops, reductions, mse_loss, ...).
    return RuntimeError(
        f"Expected all tensors to be on the same device, but found at least two devices, {common} and {other}!"
    )


def _tensor_arguments(func, args, kwargs) -> list[tuple[str, torch.Tensor, bool, bool]]:
    """(name, tensor, positional-or-out, written-to) for each tensor operand, in schema order."""
    found: list[tuple[str, torch.Tensor, bool, bool]] = []
    outs: list[tuple[str, torch.Tensor, bool, bool]] = []
    for index, argument in enumerate(func._schema.arguments):
        if index < len(args):
            value = args[index]
        elif argument.name in kwargs:
            value = kwargs[argument.name]
        else:
            continue
        written = argument.alias_info is not None and argument.alias_info.is_write
        checked = not argument.kwarg_only or argument.is_out
        values = value if isinstance(value, (list, tuple)) else (value,)
        target = outs if argument.is_out else found
        for item in values:
            if isinstance(item, torch.Tensor):
                target.append((argument.name, item, checked, written))
    # The generated CUDA wrappers check out= arguments first.
    return outs + found


def _wrapper_name(func, info: _OpInfo) -> str:
    # Mirrors torchgen's RegisterDispatchKey naming of the CUDA wrappers.
    name = func._schema.name.split("::")[-1]
    overload = "" if func._overloadname == "default" else func._overloadname
    is_out = any(a.is_out for a in func._schema.arguments)
    if info.structured:
        native = name + ("_out" if is_out else "") + (f"_{overload}" if overload else "")
        return f"wrapper_CUDA_{native}"
    return f"wrapper_CUDA_{overload}_{name}" + ("_out" if is_out else "")


def _check_common_device(operands, method: str) -> torch.device:
    # c10::impl::check_and_update_common_device, as generated for CUDA kernels.
    common = None
    for name, tensor, _, _ in operands:
        device = _dev(tensor)
        if common is None:
            common = device
        elif device != common:
            raise RuntimeError(
                f"Expected all tensors to be on the same device, but got {name} is on {device}, "
                f"different from other tensors on {common} (when checking argument in method {method})"
            )
    return common if common is not None else _CPU


def _check_tensor_iterator(operands) -> torch.device:
    devices = [(tensor, _dev(tensor), written) for _, tensor, _, written in operands]
    common = next((d for _, d, _ in devices if d.type != "cpu"), _CPU)
    for tensor, device, written in devices:
        if device == common:
            continue
        if common.type != "cpu" and device.type == "cpu" and tensor.dim() == 0 and not written:
            continue  # CPU scalars are allowed as inputs of CUDA kernels
        raise _same_device_error(common, device)
    return common


def _check_convolution(operands) -> torch.device:
    by_name = {name: tensor for name, tensor, _, _ in operands}
    source, weight, bias = by_name.get("input"), by_name.get("weight"), by_name.get("bias")
    if source is None or weight is None:
        return _check_tensor_iterator(operands)
    device = _dev(source)
    # On the CPU the oneDNN backend is picked, whose check has a longer message.
    tail = " or input should be a MKLDNN tensor and {} is a dense tensor" if device.type == "cpu" else ""
    for label, parameter in (("weight", weight), ("bias", bias)):
        if parameter is not None and _dev(parameter) != device:
            raise RuntimeError(
                f"Input type ({_type_name(source, device)}) and {label} type "
                f"({_type_name(parameter, _dev(parameter))}) should be the same" + tail.format(label)
            )
    return device


def _check_indexing(operands) -> torch.device:
    self_device = _dev(operands[0][1])
    for name, tensor, _, _ in operands[1:]:
        device = _dev(tensor)
        if name == "indices":
            if device.type != "cpu" and device != self_device:
                raise RuntimeError(
                    f"indices should be either on cpu or on the same device as the indexed tensor ({self_device})"
                )
        elif device != self_device and not (device.type == "cpu" and tensor.dim() == 0):
            raise _same_device_error(self_device, device)
    return self_device


def _output_device(func, args, kwargs) -> torch.device:
    """Check the operands like the CUDA kernel would; the device of the result."""
    operands = _tensor_arguments(func, args, kwargs)
    if not operands:
        return _ambient() or _CPU
    first = _dev(operands[0][1])
    name = func._schema.name.split("::")[-1]
    if name == "_pack_padded_sequence":
        lengths = next(t for n, t, _, _ in operands if n == "lengths")
        if _dev(lengths).type != "cpu":
            kind = torch.Tensor.type(lengths)[len("torch.") : -len("Tensor")]
            raise RuntimeError(
                "'lengths' argument should be a 1D CPU int64 tensor, but got "
                f"{lengths.dim()}D {_dev(lengths)} {kind} tensor"
            )
        return first
    if all(_dev(t) == first for _, t, _, _ in operands[1:]):
        return first
    if name in _CROSS_DEVICE:
        return first
    if name in _INDEXING:
        return _check_indexing(operands)
    if name in _CONVOLUTIONS:
        return _check_convolution(operands)
    if name == "embedding":
        # A composite whose CUDA work is index_select(weight, 0, indices).
        renamed = [("index" if n == "indices" else "self", t, c, w) for n, t, c, w in operands]
        return _check_common_device(renamed, "wrapper_CUDA__index_select")
    if name == "stack":
        # A composite that concatenates the unsqueezed inputs with cat.
        return _check_common_device(operands, "wrapper_CUDA_cat")
    overload = func._overloadname
    info = _op_table().get(name if overload == "default" else f"{name}.{overload}")
    if info is not None and info.cuda and not info.no_check:
        checked = [op for op in operands if op[2]]
        _check_common_device(checked, _wrapper_name(func, info))
    return _check_tensor_iterator(operands)


class _DispatchMode(TorchDispatchMode):
    def __init__(self, sim: SimulatedDevice) -> None:
        super().__init__()
        self.sim = sim

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        # Autograd and optimizers call in here with the function mode still
        # active; this code must see real devices.
        with torch._C.DisableTorchFunction():
            device = _output_device(func, args, kwargs)
            out = func(*args, **kwargs)
            if device.type != "cpu":
                inputs = {
                    id(s)
                    for a in tree_flatten((args, kwargs))[0]
                    if isinstance(a, torch.Tensor) and (s := _storage(a)) is not None
                }
                for value in tree_flatten(out)[0]:
                    if isinstance(value, torch.Tensor):
                        storage = _storage(value)
                        # Views and in-place results already carry their tag.
                        if storage is None or id(storage) not in inputs:
                            _set_dev(value, device)
                if func._schema.name == "aten::_pack_padded_sequence":
                    _set_dev(out[1], _CPU)  # batch_sizes always live on the CPU
        return out


# -- torch.cuda ---------------------------------------------------------------


@contextlib.contextmanager
def _patched_cuda(sim: SimulatedDevice) -> Iterator[None]:
    import torch.cuda

    def set_device(device) -> None:
        sim.current = sim.resolve(device).index

    real_parse_to = torch._C._nn._parse_to

    def parse_to(*args, **kwargs):
        # An int device means "the current accelerator", which a CPU-only
        # build refuses before any torch function is involved (Module.to(0)).
        if args and isinstance(args[0], int) and not isinstance(args[0], bool):
            args = (torch.device("cuda", args[0]), *args[1:])
        if isinstance(kwargs.get("device"), int):
            kwargs = dict(kwargs, device=torch.device("cuda", kwargs["device"]))
        return real_parse_to(*args, **kwargs)

    replacements = {
        "is_available": lambda: True,
        "device_count": lambda: sim.device_count,
        "current_device": lambda: sim.current,
        "set_device": set_device,
        "synchronize": lambda device=None: None,
        "get_device_name": lambda device=None: "torchlint simulated CUDA device",
        "get_device_capability": lambda device=None: (8, 0),
    }
    saved = {name: getattr(torch.cuda, name) for name in replacements}
    real_acceptable = torch.backends.cudnn.is_acceptable
    try:
        for name, value in replacements.items():
            setattr(torch.cuda, name, value)
        torch._C._nn._parse_to = parse_to
        # RNN.flatten_parameters asks this of "CUDA" weights; there is no
        # cuDNN to flatten them for (and asking warns on CPU builds).
        torch.backends.cudnn.is_acceptable = lambda tensor: False
        yield
    finally:
        for name, value in saved.items():
            setattr(torch.cuda, name, value)
        torch._C._nn._parse_to = real_parse_to
        torch.backends.cudnn.is_acceptable = real_acceptable


def is_simulating() -> bool:
    return getattr(_state, "depth", 0) > 0


@contextlib.contextmanager
def simulate_device(device_type: str = "cuda", *, device_count: int = 1) -> Iterator[SimulatedDevice]:
    """Pretend a CUDA device exists; see the module docstring.

    Tensors created or moved to ``cuda`` inside the block stay tagged after
    it ends, but outside the block nothing checks or reports the tags
    except :func:`device_of`.
    """
    sim = SimulatedDevice(device_type, device_count)
    _op_table()
    _state.depth = getattr(_state, "depth", 0) + 1
    try:
        with _patched_cuda(sim), _FunctionMode(sim), _DispatchMode(sim), _ambient_device(None):
            yield sim
    finally:
        _state.depth -= 1
