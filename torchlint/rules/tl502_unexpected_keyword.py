from __future__ import annotations

import re

import libcst as cst

from torchlint.knowledge import Knowledge
from torchlint.analysis.api_exemptions import inside_own_package, may_concern_other_packages
from torchlint.analysis.vision_builders import HUB_NAMESPACES, HUB_OWN_KEYWORDS, vision_hub_model, vision_hub_tag
from torchlint.rules.base import FixSpec, Invalid, Replace, Rule

# Keywords another rule reports with a better message (TL206 require-grad-typo).
_OTHER_RULES = frozenset({"require_grad"})


_HUB = re.compile(r"hub(?<=\bhub)\b")  # (the literal first: scanned for at C speed)


class UnexpectedKeyword(Rule):
    """
    ## What it does
    Checks for keyword arguments that a torch or torchvision callable does not
    take: `nn.Conv2d(3, 6, kernal_size=5)`, `nn.LSTM(10, 20, batch_firs=True)`,
    `DataLoader(data, shuffel=True)`, `models.resnet18(num_class=10)`. Callables
    are resolved through the file's imports and checked against the signatures
    recorded from the real packages for the project's torch release, following
    `**kwargs` that are only passed on (`nn.LSTM` to `RNNBase`, a torchvision
    builder to its model class). `torch.hub.load("pytorch/vision", "resnet18", ...)`
    counts as a call of the builder it names. Callables whose signature Python
    cannot read (most C functions), that take `**kwargs` for themselves, or that
    are not torch's (your own `Conv2d`, `timm.create_model`) are left alone.

    ## Why is this bad?
    The call raises `TypeError: __init__() got an unexpected keyword argument`
    when it runs. Misspelt keywords are common in code typed from memory, and the
    error often appears only after the data has loaded.

    ## Example
    ```python
    import torch.nn as nn

    conv = nn.Conv2d(3, 6, kernal_size=5)
    ```

    ## Use instead
    ```python
    import torch.nn as nn

    conv = nn.Conv2d(3, 6, kernel_size=5)
    ```

    ## Fix safety
    When exactly one accepted keyword is close to the misspelt one and it is not
    passed already, the fix renames the keyword. It is marked unsafe: the call
    could not run before, so no working behaviour changes, but the closest name
    is a guess worth a look.
    """

    code = "TL502"
    incremental = True  # findings depend on the statements linked to theirs (torchlint/slices.py)
    name = "unexpected-keyword"
    message = "This torch/torchvision callable does not take this keyword"
    severity = "error"
    # Confirmed by running the line under the installed torch (see runtime/confirmers/api.py).
    confirmable = True
    triggers = ("torch",)

    @classmethod
    def applies_to_path(cls, source: str, path: str) -> bool:
        # A package's own sources are not checked against its API (inside_own_package): only
        # another package's names (or a torchvision model through torch.hub) can be reported there.
        return may_concern_other_packages(source, path, ("torch", "torchvision", "torchaudio"), also=_HUB)

    @classmethod
    def applies_to(cls, source: str) -> bool:
        # Most files mention torch: a C-speed scan spares them the CST walk (knowledge/prescan.py).
        from torchlint.knowledge.prescan import may_fire

        return "TL502" in may_fire(source)

    VALID = [
        "import torch.nn as nn\nconv = nn.Conv2d(3, 6, kernel_size=5)\n",
        "import torch.nn as nn\nlstm = nn.LSTM(10, 20, batch_first=True)\n",
        # A Conv2d of the user's own.
        "import torch\nfrom mylayers import Conv2d\nconv = Conv2d(3, 6, kernal_size=5)\n",
        # timm takes its own keywords.
        "import timm\nimport torch\nm = timm.create_model('resnet18', pretrained=True, num_class=3)\n",
        # **kwargs forwarding: the keywords are not known here.
        "import torch.nn as nn\n\ndef make(**kwargs):\n    return nn.Conv2d(3, 6, 3, **kwargs)\n",
        # A hub repo other than torchvision's.
        "import torch\nm = torch.hub.load('ultralytics/yolov5', 'yolov5s', pretrainedd=True)\n",
        # pretrained= is TL202's.
        "import torchvision\nm = torchvision.models.resnet18(pretrained=True)\n",
        # F is a local variable.
        "import torch\n\ndef f(F, x):\n    return F.relu(x, inplac=True)\n",
    ]
    INVALID = [
        Invalid(
            "import torch.nn as nn\nconv = nn.Conv2d(3, 6, kernal_size=5)\n",
            "import torch.nn as nn\nconv = nn.Conv2d(3, 6, kernel_size=5)\n",
        ),
        Invalid(
            "import torch.nn as nn\nlstm = nn.LSTM(10, 20, batch_firs=True)\n",
            "import torch.nn as nn\nlstm = nn.LSTM(10, 20, batch_first=True)\n",
        ),
        Invalid(
            "from torch.utils.data import DataLoader\nloader = DataLoader(data, batch_size=4, shuffel=True)\n",
            "from torch.utils.data import DataLoader\nloader = DataLoader(data, batch_size=4, shuffle=True)\n",
        ),
        Invalid(
            "import torchvision.models as models\nm = models.resnet18(num_class=10)\n",
            "import torchvision.models as models\nm = models.resnet18(num_classes=10)\n",
        ),
        Invalid(
            "import torch\nm = torch.hub.load('pytorch/vision', 'resnet18', weights=None, num_class=10)\n",
            "import torch\nm = torch.hub.load('pytorch/vision', 'resnet18', weights=None, num_classes=10)\n",
        ),
        Invalid("import torch\nopt = torch.optim.Adam(params, lr=1e-3, momentum=0.9)\n"),
    ]

    def visit_Call(self, node: cst.Call) -> None:
        if not any(a.keyword is not None for a in node.args):
            return
        q = self.context.qualname(node.func)
        if q is None or q.split(".", 1)[0] not in ("torch", "torchvision", "torchaudio"):
            return
        own: frozenset[str] = frozenset()
        shown = self.context.code(node.func)
        kb = self.context.knowledge
        if q == "torch.hub.load":
            model = vision_hub_model(node) if vision_hub_tag(node) is None else None  # a tag: another release
            target = next((f"{ns}.{model}" for ns in HUB_NAMESPACES if model and kb.kind(f"{ns}.{model}") == "function"), None)
            if target is None:
                return
            own = HUB_OWN_KEYWORDS
            shown = f"torchvision's `{model}` (through torch.hub.load)"
            q = target
        else:
            shown = f"`{shown}`"
        accepted = kb.accepted_keywords(q)
        if accepted is None or inside_own_package(self.context.path, q):
            return  # (a package's own sources follow its installed release, not the target)
        package = q.split(".", 1)[0]
        given = {a.keyword.value for a in node.args if a.keyword is not None}
        for arg in node.args:
            if arg.keyword is None:
                continue
            kw = arg.keyword.value
            if kw in accepted or kw in own or kw in _OTHER_RULES:
                continue
            if kb.deprecation(q, kw) is not None or kb.removal(q, kw) is not None:
                continue  # TL203/TL204 explain it
            elsewhere = kb.keyword_in_any_release(q, kw)
            if not kb.exact(package) and elsewhere:
                continue  # the target release is not recorded and some release takes it
            guess = Knowledge.close_match(kw, accepted)
            release = kb.target.torchvision if package == "torchvision" else kb.target.torch
            message = f"{shown} does not take the keyword `{kw}` in {package} {release} (a TypeError when called)"
            if elsewhere:
                message += "; another recorded release may take it"
            fix = None
            if guess is not None:
                message += f"; did you mean `{guess}`?"
                if guess not in given:
                    fix = FixSpec(
                        f"Replace `{kw}=` with `{guess}=`", (Replace(arg.keyword, cst.Name(guess)),), applicability="unsafe"
                    )
            self.report(arg, message, fix=fix, data={"callable": q, "keyword": kw, "suggestion": guess})
