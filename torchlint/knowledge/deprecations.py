"""Deprecated and removed PyTorch APIs: one hand-checked table.

Each entry says what is deprecated (a callable, a keyword of it, a module),
since which release it warns (``since``), from which it fails (``removed``),
the replacement and the release it appeared in, whether the rewrite is
mechanical (and how: ``fix``), and the text torch itself gives. The text and
the releases are not trusted: ``tests/test_deprecations.py`` runs ``check``
under every torch it can find and asserts the warning (or, from ``removed``
on, the exception) really happens with that text.

Started from TorchFix's list (``deprecated_symbols.yaml`` and its visitors)
and the APIs torch's own warnings name. Deliberately absent, because torch
2.13 does not warn about them (TorchFix flags some): ``torch.norm``,
``torch.svd``, ``F.sigmoid``, ``F.tanh``, ``torch.autograd.Variable``,
``torch.ger``, ``nn.UpsamplingNearest2d``/``UpsamplingBilinear2d`` (their
forward calls ``F.interpolate`` directly).

``fix`` values (applied by TL203/TL204 only where the replacement exists in
the target release):

* ``rename``: the same arguments to ``replacement``;
* ``first-arg:<code>``: ``replacement(<code>, args...)`` (``torch.amp.autocast("cuda", ...)``);
* ``keyword:<name>=<code>``: ``replacement(args..., name=code)``; a bare decorator
  becomes a call (``@torch.amp.custom_fwd(device_type="cuda")``);
* ``reduction``: ``size_average=``/``reduce=`` literals -> ``reduction="mean"|"sum"|"none"``;
* ``range``: ``torch.range(a, b)`` with integer literals -> ``torch.arange(a, b + 1)``;
* ``list-args``: ``chain_matmul(a, b, c)`` -> ``multi_dot([a, b, c])``;
* ``one-arg``: a rename valid only when the call has exactly one positional argument and no keywords;
* ``call-rename``: an attribute read becomes a call of ``replacement`` (``torch.has_cuda`` -> ``torch.backends.cuda.is_built()``).
"""

from __future__ import annotations

from dataclasses import dataclass

from torchlint.knowledge.versions import Version


@dataclass(frozen=True)
class Deprecation:
    api: str  # qualified name as users write it (``torch.cuda.amp.autocast``), or a module
    since: str  # first release that warns (or documents it deprecated)
    message: str  # the text torch gives (a distinctive part of it)
    check: str  # code that triggers it, run by the verification test (``torch`` is imported)
    replacement: str | None = None
    replacement_since: str | None = None  # release the replacement appeared in
    fix: str | None = None  # see the module docstring; None: not mechanical
    removed: str | None = None  # first release where it raises
    removed_message: str | None = None
    keyword: str | None = None  # deprecated keyword(s) of ``api``, ``|``-separated
    kind: str = "call"  # call | keyword | module
    package: str = "torch"
    # Calls whose first positional argument would then be ambiguous etc.: a short why.
    note: str = ""

    @property
    def since_version(self) -> Version:
        return Version.parse(self.since) or Version(0)

    @property
    def removed_version(self) -> Version | None:
        return Version.parse(self.removed) if self.removed else None

    @property
    def replacement_version(self) -> Version | None:
        return Version.parse(self.replacement_since) if self.replacement_since else None

    def keywords(self) -> tuple[str, ...]:
        return tuple(self.keyword.split("|")) if self.keyword else ()


_AMP_CHECKS = "torch.{0}.amp.{1}({2})"
_LOSSES = (
    "L1Loss", "MSELoss", "CrossEntropyLoss", "NLLLoss", "BCELoss", "BCEWithLogitsLoss", "KLDivLoss",
    "SmoothL1Loss", "SoftMarginLoss", "MultiLabelMarginLoss", "MultiLabelSoftMarginLoss",
    "MultiMarginLoss", "HingeEmbeddingLoss", "CosineEmbeddingLoss", "MarginRankingLoss", "TripletMarginLoss",
    "PoissonNLLLoss", "NLLLoss2d",
)
_FUNCTIONAL_LOSSES = (
    "l1_loss", "mse_loss", "cross_entropy", "nll_loss", "binary_cross_entropy", "binary_cross_entropy_with_logits",
    "kl_div", "smooth_l1_loss", "soft_margin_loss", "multilabel_margin_loss", "multilabel_soft_margin_loss",
    "multi_margin_loss", "hinge_embedding_loss", "cosine_embedding_loss", "margin_ranking_loss",
    "triplet_margin_loss", "poisson_nll_loss",
)
_REDUCTION_TEXT = "size_average and reduce args will be deprecated, please use reduction="

DEPRECATIONS: tuple[Deprecation, ...] = (
    # --- torch.cuda.amp / torch.cpu.amp -> torch.amp (2.4) ---
    *(
        Deprecation(
            f"torch.{dev}.amp.{name}", "2.4",
            f"`torch.{dev}.amp.{name}(args...)` is deprecated. Please use `torch.amp.{name}('{dev}', args...)` instead.",
            _AMP_CHECKS.format(dev, name, ""),
            replacement=f"torch.amp.{name}", replacement_since="2.3" if name == "GradScaler" else "2.0",
            fix=f'first-arg:"{dev}"',
        )
        for dev in ("cuda", "cpu")
        for name in ("autocast", "GradScaler")
    ),
    *(
        Deprecation(
            f"torch.cuda.amp.{name}", "2.4",
            f"`torch.cuda.amp.{name}(args...)` is deprecated. Please use `torch.amp.{name}(args..., device_type='cuda')` instead.",
            f"torch.cuda.amp.{name}(lambda x: x)",
            replacement=f"torch.amp.{name}", replacement_since="2.4", fix='keyword:device_type="cuda"',
        )
        for name in ("custom_fwd", "custom_bwd")
    ),
    # --- losses: size_average= / reduce= -> reduction= ---
    *(
        Deprecation(
            f"torch.nn.{name}", "0.4", _REDUCTION_TEXT, f"torch.nn.{name}(size_average=False)",
            keyword="size_average|reduce", kind="keyword", replacement="reduction", replacement_since="0.4",
            fix="reduction",
        )
        for name in _LOSSES
    ),
    *(
        Deprecation(
            f"torch.nn.functional.{name}", "0.4", _REDUCTION_TEXT, "",
            keyword="size_average|reduce", kind="keyword", replacement="reduction", replacement_since="0.4",
            fix="reduction",
        )
        for name in _FUNCTIONAL_LOSSES
    ),
    Deprecation(
        "torch.autograd.Variable", "0.4", "volatile was removed and now has no effect. Use `with torch.no_grad():` instead.",
        "torch.autograd.Variable(torch.ones(1), volatile=True)", keyword="volatile", kind="keyword",
        replacement="torch.no_grad", replacement_since="0.4",
    ),
    # --- nn.init without the trailing underscore ---
    *(
        Deprecation(
            f"torch.nn.init.{name}", "0.4", f"`nn.init.{name}` is now deprecated in favor of `nn.init.{name}_`.",
            f"torch.nn.init.{name}(torch.empty(2, 2){extra})",
            replacement=f"torch.nn.init.{name}_", replacement_since="0.4", fix="rename",
        )
        for name, extra in (
            ("uniform", ""), ("normal", ""), ("constant", ", 1.0"), ("eye", ""),
            ("xavier_uniform", ""), ("xavier_normal", ""), ("kaiming_uniform", ""), ("kaiming_normal", ""),
            ("orthogonal", ""), ("sparse", ", 0.5"),
        )
    ),
    # --- functional upsampling ---
    Deprecation(
        "torch.nn.functional.upsample", "0.4.1", "`nn.functional.upsample` is deprecated. Use `nn.functional.interpolate` instead.",
        "torch.nn.functional.upsample(torch.ones(1, 1, 2, 2), scale_factor=2)",
        replacement="torch.nn.functional.interpolate", replacement_since="0.4.1", fix="rename",
    ),
    Deprecation(
        "torch.nn.functional.upsample_nearest", "0.4.1",
        "`nn.functional.upsample_nearest` is deprecated. Use `nn.functional.interpolate` instead.",
        "torch.nn.functional.upsample_nearest(torch.ones(1, 1, 2, 2), scale_factor=2)",
        replacement="torch.nn.functional.interpolate", replacement_since="0.4.1", fix='keyword:mode="nearest"',
    ),
    Deprecation(
        "torch.nn.functional.upsample_bilinear", "0.4.1",
        "`nn.functional.upsample_bilinear` is deprecated. Use `nn.functional.interpolate` instead.",
        "torch.nn.functional.upsample_bilinear(torch.ones(1, 1, 2, 2), scale_factor=2)",
        replacement="torch.nn.functional.interpolate", replacement_since="0.4.1",
        note="interpolate(..., mode=\"bilinear\", align_corners=True) is the same computation",
    ),
    Deprecation(
        "torch.nn.utils.clip_grad_norm", "0.4",
        "`torch.nn.utils.clip_grad_norm` is now deprecated in favor of `torch.nn.utils.clip_grad_norm_`.",
        "torch.nn.utils.clip_grad_norm([torch.ones(1, requires_grad=True)], 1.0)",
        replacement="torch.nn.utils.clip_grad_norm_", replacement_since="0.4", fix="rename",
    ),
    Deprecation(
        "torch.set_default_tensor_type", "2.1",
        "torch.set_default_tensor_type() is deprecated as of PyTorch 2.1, please use torch.set_default_dtype() and "
        "torch.set_default_device() as alternatives.",
        "torch.set_default_tensor_type(torch.FloatTensor)",
        replacement="torch.set_default_dtype", replacement_since="2.1",
        note="and torch.set_default_device() for the device part",
    ),
    # --- linalg ---
    Deprecation(
        "torch.lu", "1.13", "torch.lu is deprecated in favor of torch.linalg.lu_factor",
        "torch.lu(torch.eye(2))", replacement="torch.linalg.lu_factor", replacement_since="1.13",
    ),
    Deprecation(
        "torch.lu_solve", "1.13", "torch.lu_solve is deprecated in favor of torch.linalg.lu_solve",
        "torch.lu_solve(torch.ones(2, 1), *torch.linalg.lu_factor(torch.eye(2)))",
        replacement="torch.linalg.lu_solve", replacement_since="1.13", note="its arguments are reversed",
    ),
    Deprecation(
        "torch.triangular_solve", "1.11", "torch.triangular_solve is deprecated in favor of torch.linalg.solve_triangular",
        "torch.triangular_solve(torch.ones(2, 1), torch.eye(2))",
        replacement="torch.linalg.solve_triangular", replacement_since="1.11",
        note="its arguments are reversed and it returns only the solution",
    ),
    Deprecation(
        "torch.chain_matmul", "1.9", "torch.chain_matmul is deprecated and will be removed in a future PyTorch release. "
        "Use torch.linalg.multi_dot instead",
        "torch.chain_matmul(torch.eye(2), torch.eye(2))",
        replacement="torch.linalg.multi_dot", replacement_since="1.9", fix="list-args",
    ),
    Deprecation(
        "torch.qr", "1.9", "torch.qr is deprecated in favor of torch.linalg.qr",
        "torch.qr(torch.eye(2))", replacement="torch.linalg.qr", replacement_since="1.8", fix="one-arg",
        removed="2.14", removed_message="This function was deprecated since version 1.9 and is now removed. `torch.qr` is deprecated in favor of `torch.linalg.qr`",
    ),
    Deprecation(
        "torch.cholesky", "1.9", "torch.cholesky is deprecated in favor of torch.linalg.cholesky",
        "torch.cholesky(torch.eye(2))", replacement="torch.linalg.cholesky", replacement_since="1.8", fix="one-arg",
        removed="2.14", removed_message="This function was deprecated since version 1.9 and is now removed. `torch.cholesky` is deprecated in favor of `torch.linalg.cholesky`",
    ),
    *(
        Deprecation(
            f"torch.{name}", "1.9", "", f"torch.{name}({args})", replacement=f"torch.linalg.{new}", replacement_since="1.8",
            removed="1.13" if name != "matrix_rank" else "1.13",
            removed_message="This function was deprecated since version 1.9 and is now removed.",
            note=note,
        )
        for name, args, new, note in (
            ("symeig", "torch.eye(2)", "eigh", "it uses the lower triangle by default; torch.linalg.eigvalsh for the eigenvalues only"),
            ("solve", "torch.eye(2), torch.eye(2)", "solve", "its arguments are reversed"),
            ("lstsq", "torch.eye(2), torch.eye(2)", "lstsq", "its arguments are reversed"),
            ("eig", "torch.eye(2)", "eig", "it returns complex tensors; torch.linalg.eigvals for the eigenvalues only"),
            ("matrix_rank", "torch.eye(2)", "matrix_rank", "`symmetric=` is `hermitian=` there"),
        )
    ),
    Deprecation(
        "torch.range", "0.4", "torch.range is deprecated and will be removed in a future release",
        "torch.range(0, 3)", replacement="torch.arange", replacement_since="0.4", fix="range",
        note="torch.arange excludes the end",
    ),
    Deprecation(
        "torch.testing.assert_allclose", "1.12",
        "`torch.testing.assert_allclose()` is deprecated since 1.12 and will be removed in a future release. "
        "Please use `torch.testing.assert_close()` instead.",
        "torch.testing.assert_allclose(torch.ones(1), torch.ones(1))",
        replacement="torch.testing.assert_close", replacement_since="1.12",
        note="its default tolerances differ",
    ),
    # --- functorch -> torch.func ---
    *(
        Deprecation(
            f"functorch.{name}", "2.0", f"`functorch.{name}` is deprecated as of PyTorch 2.0",
            f"import functorch; functorch.{name}(lambda x: x{'.sum()' if name == 'grad' else ''})",
            replacement=f"torch.func.{name}", replacement_since="2.0", fix="rename",
        )
        for name in ("vmap", "grad", "vjp", "jvp", "jacrev", "jacfwd", "hessian", "functionalize")
        if name not in ("vjp", "jvp")  # need arguments to run; checked through the others' shared wrapper
    ),
    Deprecation(
        "torch.nn.utils.stateless.functional_call", "2.0",
        "`torch.nn.utils.stateless.functional_call` is deprecated as of PyTorch 2.0",
        "torch.nn.utils.stateless.functional_call(torch.nn.Linear(1, 1), {}, (torch.ones(1),))",
        replacement="torch.func.functional_call", replacement_since="2.0", fix="rename",
    ),
    Deprecation(
        "torch.nn.utils.weight_norm", "2.1",
        "`torch.nn.utils.weight_norm` is deprecated in favor of `torch.nn.utils.parametrizations.weight_norm`.",
        "torch.nn.utils.weight_norm(torch.nn.Linear(2, 2))",
        replacement="torch.nn.utils.parametrizations.weight_norm", replacement_since="2.1",
        note="the parametrized module stores its weights under different state_dict keys",
    ),
    Deprecation(
        "torch.backends.cuda.sdp_kernel", "2.3",
        "`torch.backends.cuda.sdp_kernel()` is deprecated. In the future, this context manager will be removed. "
        "Please see `torch.nn.attention.sdpa_kernel()` for the new context manager, with updated signature.",
        "torch.backends.cuda.sdp_kernel()",
        replacement="torch.nn.attention.sdpa_kernel", replacement_since="2.3",
        note="it takes a list of backends instead of boolean flags",
    ),
    *(
        Deprecation(
            f"torch.{old}", "2.4", f"torch.{old}{args_shown} is deprecated. Please use torch.{new} instead.",
            f"torch.{old}({args})", replacement=f"torch.{new.split('(')[0]}", replacement_since="2.4",
            fix=f"first-arg:{dev}" if not args else None,
        )
        for old, args_shown, args, new, dev in (
            ("get_autocast_gpu_dtype", "()", "", "get_autocast_dtype('cuda')", '"cuda"'),
            ("get_autocast_cpu_dtype", "()", "", "get_autocast_dtype('cpu')", '"cpu"'),
            ("is_autocast_cpu_enabled", "()", "", "is_autocast_enabled('cpu')", '"cpu"'),
            ("set_autocast_gpu_dtype", "(dtype)", "torch.float16", "set_autocast_dtype('cuda', dtype)", '"cuda"'),
        )
    ),
    *(
        Deprecation(
            f"torch.jit.{name}", "2.13", f"`torch.jit.{name}` is deprecated. Please switch to `torch.compile` or `torch.export`.",
            check, note="no mechanical replacement: torch.compile or torch.export",
        )
        for name, check in (
            ("script", "torch.jit.script(torch.nn.Linear(1, 1))"),
            ("trace", "torch.jit.trace(torch.nn.Linear(1, 1), torch.ones(1))"),
        )
    ),
    # --- torch.has_* (served by torch.__getattr__) ---
    *(
        Deprecation(
            f"torch.{old}", "2.1", f"'{old}' is deprecated, please use '{new}()'", f"torch.{old}", kind="attribute",
            replacement=new, replacement_since="2.1", fix="call-rename",
        )
        for old, new in (
            ("has_cuda", "torch.backends.cuda.is_built"), ("has_cudnn", "torch.backends.cudnn.is_available"),
            ("has_mps", "torch.backends.mps.is_built"), ("has_mkldnn", "torch.backends.mkldnn.is_available"),
        )
    ),
    Deprecation(
        "torch.utils._pytree._register_pytree_node", "2.2",
        "`torch.utils._pytree._register_pytree_node` is deprecated. Please use `torch.utils._pytree.register_pytree_node` instead.",
        "torch.utils._pytree._register_pytree_node(type('P', (), {}), lambda x: ([], None), lambda a, b: None)",
        replacement="torch.utils._pytree.register_pytree_node", replacement_since="2.2",
        note="its keyword arguments differ (`to_dumpable_context`, `from_dumpable_context`)",
    ),
    # --- private and removed modules ---
    Deprecation(
        "torch._six", "1.13", "", "import torch._six", removed="2.0", removed_message="No module named 'torch._six'",
        kind="module", note="use the builtins it aliased (`string_classes` -> `str`, `inf` -> `math.inf`)",
    ),
    *(
        Deprecation(
            f"torch.utils.data._utils.collate.{name}", "1.11", "", "", kind="private",
            replacement=f"torch.utils.data.{name}", replacement_since="1.11", fix="rename",
            note="a private module: it may change without notice",
        )
        for name in ("default_collate", "default_convert")
    ),
    # --- torchvision ---
    Deprecation(
        "torchvision.transforms.functional_tensor", "0.15",
        "The torchvision.transforms.functional_tensor module is deprecated", "import torchvision.transforms.functional_tensor",
        removed="0.17", removed_message="No module named 'torchvision.transforms.functional_tensor'",
        replacement="torchvision.transforms.functional", replacement_since="0.8", kind="module", package="torchvision",
    ),
)


def by_api() -> dict[str, tuple[Deprecation, ...]]:
    out: dict[str, list[Deprecation]] = {}
    for d in DEPRECATIONS:
        out.setdefault(d.api, []).append(d)
    return {k: tuple(v) for k, v in out.items()}
