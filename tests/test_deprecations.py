"""Every entry of the deprecation table against the real torch / torchvision.

The checks run in one child process per interpreter (torch's C++ warnings fire
once per process, so each check runs once there), with the interpreter running
the tests, and with any listed in ``TORCHLINT_TORCH_PYTHONS`` (paths separated
by ``:``, e.g. venvs with other torch releases). For the release installed
there, an entry must warn with its text (``since`` <= release < ``removed``)
or raise with its removal text (``removed`` <= release). APIs the table leaves
out on purpose must stay silent.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from torchlint.knowledge.deprecations import DEPRECATIONS, by_api
from torchlint.knowledge.versions import Version

pytest.importorskip("torch")

# torch and torchvision run in child processes: the full run, not the inner loop.
pytestmark = pytest.mark.slow

# torch 2.13 does not warn about these; TorchFix flags some of them.
NOT_DEPRECATED = {
    "torch.norm": "torch.norm(torch.ones(2))",
    "torch.svd": "torch.svd(torch.eye(2))",
    "torch.nn.functional.sigmoid": "torch.nn.functional.sigmoid(torch.ones(1))",
    "torch.nn.functional.tanh": "torch.nn.functional.tanh(torch.ones(1))",
    "torch.autograd.Variable": "torch.autograd.Variable(torch.ones(1))",
}

_RUNNER = textwrap.dedent(
    """
    import json, sys, warnings
    import torch
    try:
        import torchvision
        vision = torchvision.__version__
    except Exception:
        vision = None
    checks = json.loads(sys.stdin.read())
    out = {"torch": torch.__version__, "torchvision": vision, "results": {}}
    for key, code in checks.items():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            error = None
            try:
                exec(code, {"torch": torch})
            except BaseException as exc:
                error = f"{type(exc).__name__}: {exc}"
        out["results"][key] = {"warnings": [str(w.message) for w in caught], "error": error}
    print(json.dumps(out))
    """
)


def _interpreters() -> list[str]:
    extra = [p for p in os.environ.get("TORCHLINT_TORCH_PYTHONS", "").split(":") if p]
    return [sys.executable, *extra]


def _checks() -> dict[str, str]:
    checks = {f"{i}": d.check for i, d in enumerate(DEPRECATIONS) if d.check}
    checks.update({f"not:{api}": code for api, code in NOT_DEPRECATED.items()})
    for i, d in enumerate(DEPRECATIONS):
        if d.kind == "private" and d.replacement:
            module, _, name = d.api.rpartition(".")
            checks[f"private:{i}"] = f"import importlib\nassert importlib.import_module({module!r}).{name} is {d.replacement}"
    return checks


@pytest.fixture(scope="module", params=_interpreters())
def observed(request):
    proc = subprocess.run(
        [request.param, "-c", _RUNNER], input=json.dumps(_checks()), capture_output=True, text=True, timeout=600,
        env={**os.environ, "CUDA_VISIBLE_DEVICES": ""},
    )
    if proc.returncode != 0 or not proc.stdout.strip():
        pytest.skip(f"{request.param}: cannot run torch: {proc.stderr[-300:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _release(text: str | None) -> Version | None:
    return Version.parse(text).release if text else None  # type: ignore[union-attr]


@pytest.mark.parametrize("index", [i for i, d in enumerate(DEPRECATIONS) if d.check], ids=lambda i: DEPRECATIONS[i].api)
def test_entry_matches_the_real_package(observed, index):
    entry = DEPRECATIONS[index]
    installed = _release(observed["torchvision"] if entry.package == "torchvision" else observed["torch"])
    if installed is None:
        pytest.skip(f"{entry.package} is not installed there")
    result = observed["results"][str(index)]
    removed = entry.removed_version
    if removed is not None and installed >= removed.release:
        assert result["error"] is not None, f"{entry.api}: expected an error from {entry.package} {installed}"
        assert (entry.removed_message or "") in result["error"], result["error"]
    elif installed >= entry.since_version.release:
        texts = result["warnings"] + ([result["error"]] if result["error"] else [])
        assert any(entry.message in t for t in texts), (entry.api, texts)
        assert result["error"] is None, f"{entry.api} raised in {entry.package} {installed}: {result['error']}"
    else:
        pytest.skip(f"{entry.api} is deprecated only from {entry.since}")


@pytest.mark.parametrize("api", sorted(NOT_DEPRECATED))
def test_not_deprecated_apis_stay_silent(observed, api):
    result = observed["results"][f"not:{api}"]
    assert result["error"] is None and result["warnings"] == [], result
    # Only a keyword of it may be (Variable's volatile=).
    assert all(e.keyword for e in by_api().get(api, ()))


def test_private_aliases_are_the_public_objects(observed):
    for key, result in observed["results"].items():
        if key.startswith("private:"):
            assert result["error"] is None, (DEPRECATIONS[int(key.split(":")[1])].api, result["error"])


def test_table_is_well_formed():
    for d in DEPRECATIONS:
        assert d.since_version is not None and (d.removed is None or d.removed_version > d.since_version), d.api
        assert d.check or d.kind in ("keyword", "private"), f"{d.api}: no check"
        if d.fix is not None:
            assert d.replacement, d.api
        assert d.message or d.removed or d.kind == "private", d.api
