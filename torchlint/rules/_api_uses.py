"""The rule TL203 (deprecated-api) and TL204 (removed-api) both are: uses of a table entry, and their fixes.

Not a rule module of its own (the registry loads ``tl*.py`` only). Each subclass
says which entries it reports (``_entry``); the rest is common: calls, keyword
arguments, attribute reads and decorators, imports of modules, and the fix kinds
of ``torchlint/knowledge/deprecations.py``. What is never judged (a package's own
sources, compatibility code for other releases) the shared analysis
:mod:`torchlint.analysis.api_exemptions` says.
"""

from __future__ import annotations

import re

import libcst as cst

from torchlint.analysis.api_exemptions import CompatibilityCode, inside_own_package, may_concern_other_packages
from torchlint.knowledge.deprecations import Deprecation, by_api
from torchlint.gates import may_use_api, per_lint
from torchlint.names import dotted_name
from torchlint.rules.base import FixOp, FixSpec, InsertAfter, InsertBefore, Replace, Rule

_APIS = frozenset(by_api())
_LAST_NAMES = frozenset(api.rsplit(".", 1)[-1] for api in _APIS)
_PACKAGES = ("torch", "torchvision", "functorch", "torchaudio")


def _int_literal(expr: cst.BaseExpression) -> int | None:
    if isinstance(expr, cst.Integer):
        return int(expr.evaluated_value)
    if isinstance(expr, cst.UnaryOperation) and isinstance(expr.operator, cst.Minus) and isinstance(expr.expression, cst.Integer):
        return -int(expr.expression.evaluated_value)
    return None


def _bool_literal(expr: cst.BaseExpression) -> bool | None | str:
    if isinstance(expr, cst.Name) and expr.value in ("True", "False", "None"):
        return {"True": True, "False": False, "None": None}[expr.value]
    return "?"


# Only files naming some entry (or a deprecated keyword, or a removed module) are walked.
# A name is reached as ``x.name``, imported (``from m import a, name``), or a keyword (``reduce=``).
_TRIGGER = re.compile(
    r"(?:\.|\bimport\b[^\n]*\b)(?P<name>" + "|".join(sorted({re.escape(n) for n in _LAST_NAMES} | {"functional_tensor", "_six"}))
    + r")\b|\b(?:size_average|reduce|volatile)\s*=(?!=)"
)
# The module each name is reached through (``.grad`` matters only next to ``functorch``, ``.uniform`` next to ``init``).
_PARENTS: dict[str, set[str]] = {}
for _api in _APIS:
    _parts = _api.split(".")
    _PARENTS.setdefault(_parts[-1], set()).add(_parts[-2] if len(_parts) > 1 else _parts[0])
_PARENTS.setdefault("functional_tensor", set()).add("transforms")
_PARENTS.setdefault("_six", set()).add("torch")


# The last source ``ApiUseRule.applies_to`` judged (TL203 and TL204 ask about the same text in turn).
_last_applies: tuple[str, bool] | None = None


@per_lint
def _forget() -> None:
    global _last_applies
    _last_applies = None


class ApiUseRule(CompatibilityCode, Rule):
    """Base of TL203/TL204; subclasses define ``_entry``, ``_describe`` and the class attributes."""

    triggers = ("torch", "functorch")
    # (``_TRIGGER`` is searched by ``applies_to``, once per source for TL203 and TL204 together.)

    @classmethod
    def applies_to_path(cls, source: str, path: str) -> bool:
        # Every entry names its package; within that package's own sources none is reported.
        return may_concern_other_packages(source, path, _PACKAGES)

    @classmethod
    def applies_to(cls, source: str) -> bool:
        global _last_applies
        if _last_applies is not None and _last_applies[0] is source:
            return _last_applies[1]
        found = False
        for m in _TRIGGER.finditer(source):
            name = m.group("name")
            if name is None or any(parent in source for parent in _PARENTS.get(name, ())):
                found = True
                break
        # Then exactly: some dotted name or import of the file may resolve to an entry.
        found = found and may_use_api(source, _APIS)
        _last_applies = (source, found)
        return found

    def __init__(self, context) -> None:  # type: ignore[no-untyped-def]
        super().__init__(context)
        self._handled: set[int] = set()
        # (Compatibility code for older releases, an ``except`` fallback (``try: torch.amp...
        # except AttributeError: torch.cuda.amp...``) or a branch on the version, is not
        # reported: ``compat_fallback``.)

    # -- which entries --

    def _entry(self, qualname: str, keyword: str | None = None) -> Deprecation | None:
        raise NotImplementedError

    def _describe(self, entry: Deprecation, shown: str) -> str:
        raise NotImplementedError

    def _own_package(self, entry: Deprecation) -> bool:
        return inside_own_package(self.context.path, entry.api)

    def _lookup(self, node: cst.BaseExpression, keyword: str | None = None) -> tuple[str, Deprecation] | None:
        name = node.attr.value if isinstance(node, cst.Attribute) else node.value if isinstance(node, cst.Name) else None
        if name is None or (keyword is None and name not in _LAST_NAMES):
            return None
        q = self.context.qualname(node)
        if q is None or q.split(".", 1)[0] not in _PACKAGES:
            return None
        entry = self._entry(q, keyword)
        if entry is None or self.compat_fallback or self._own_package(entry):
            return None
        return q, entry

    # -- uses --

    def _reported_at_import(self, node: cst.BaseExpression, entry: Deprecation) -> bool:
        """A bare name from ``from X import name``: the import carries the finding, unless the call must change too."""
        return isinstance(node, cst.Name) and entry.fix in (None, "rename")

    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        found = self._lookup(func)
        if found is not None and self._reported_at_import(func, found[1]):
            self._handled.add(id(func))
            found = None
        if found is not None and found[1].kind in ("call", "private", "attribute"):
            self._handled.add(id(func))
            q, entry = found
            self._report(func, entry, self._describe(entry, f"`{self.context.code(func)}`"), self._call_fix(node, entry))
        if not any(a.keyword is not None for a in node.args):
            return
        q = self.context.qualname(func)
        if q is None or q.split(".", 1)[0] not in _PACKAGES:
            return
        reported: set[str] = set()
        for arg in node.args:
            if arg.keyword is None:
                continue
            entry = self._entry(q, arg.keyword.value)
            if entry is None or entry.api in reported or self.compat_fallback or self._own_package(entry):
                continue
            reported.add(entry.api)
            shown = f"`{arg.keyword.value}=` of `{self.context.code(func)}`"
            self._report(arg, entry, self._describe(entry, shown), self._keyword_fix(node, entry))

    def visit_Attribute(self, node: cst.Attribute) -> None:
        self._reference(node)

    def visit_Name(self, node: cst.Name) -> None:
        self._reference(node)

    def visit_Decorator(self, node: cst.Decorator) -> None:
        found = self._lookup(node.decorator) if isinstance(node.decorator, (cst.Attribute, cst.Name)) else None
        if found is not None and not self._reported_at_import(node.decorator, found[1]):
            self._handled.add(id(node.decorator))
            entry = found[1]
            self._report(node.decorator, entry, self._describe(entry, f"`@{self.context.code(node.decorator)}`"),
                         self._bare_fix(node.decorator, entry))

    def _reference(self, node: cst.Attribute | cst.Name) -> None:
        if id(node) in self._handled:
            return
        found = self._lookup(node)
        if found is None:
            return
        entry = found[1]
        if entry.kind == "keyword" or entry.kind == "module" or self._reported_at_import(node, entry):
            return
        self._handled.add(id(node))
        fix = self._bare_fix(node, entry) if entry.kind == "attribute" else None
        self._report(node, entry, self._describe(entry, f"`{self.context.code(node)}`"), fix)

    def visit_ImportFrom(self, node: cst.ImportFrom) -> None:
        if node.relative or node.module is None:
            return
        module = dotted_name(node.module)
        if module is None:
            return
        if not isinstance(node.names, cst.ImportStar):
            found = []
            for alias in node.names:
                self._handled.add(id(alias.name))
                if alias.asname is not None:
                    self._handled.add(id(alias.asname.name))
                name = dotted_name(alias.name)
                entry = self._entry(f"{module}.{name}") if name else None
                if entry is not None and entry.kind != "module" and not self.compat_fallback and not self._own_package(entry):
                    found.append((alias, entry))
            if found:
                fix = self._import_fix(node, module, found)
                for alias, entry in found:
                    self._report(alias, entry, self._describe(entry, f"`{module}.{dotted_name(alias.name)}`"), fix)
                    fix = None  # one fix rewrites the whole statement
        self._module_use(node.module, module)

    def _import_fix(self, node: cst.ImportFrom, module: str, found: list) -> FixSpec | None:  # type: ignore[type-arg]
        """``from functorch import vmap, grad`` -> ``from torch.func import vmap, grad``: every name renamed alike."""
        if isinstance(node.names, cst.ImportStar) or len(found) != len(node.names):
            return None
        homes = set()
        for alias, entry in found:
            new = entry.replacement or ""
            home, _, last = new.rpartition(".")
            if entry.fix != "rename" or last != dotted_name(alias.name) or self.context.knowledge.exists(new) is not True:
                return None
            homes.add(home)
        if len(homes) != 1:
            return None
        home = homes.pop()
        return FixSpec(f"Import from `{home}` instead of `{module}`", (Replace(node.module, home),))  # type: ignore[arg-type]

    def visit_Import(self, node: cst.Import) -> None:
        for alias in node.names:
            if alias.asname is not None:
                self._handled.add(id(alias.asname.name))
            name = dotted_name(alias.name)
            if name is not None:
                self._module_use(alias.name, name)

    def _module_use(self, node: cst.BaseExpression, module: str) -> None:
        # Absolute module names, not local names: none of their parts is a use.
        part = node
        while isinstance(part, cst.Attribute):
            self._handled.add(id(part))
            part = part.value
        self._handled.add(id(part))
        for api in _prefixes(module):
            entry = self._entry(api)
            if entry is not None and entry.kind == "module" and not self.compat_fallback and not self._own_package(entry):
                fix = None
                if entry.replacement and api == module and self.context.knowledge.exists(entry.replacement):
                    fix = FixSpec(f"Import `{entry.replacement}` instead", (Replace(node, entry.replacement),))
                self._report(node, entry, self._describe(entry, f"`{api}`"), fix)
                return

    def _report(self, node: cst.CSTNode, entry: Deprecation, message: str, fix: FixSpec | None) -> None:
        data = {"api": entry.api, "since": entry.since, "removed": entry.removed, "replacement": entry.replacement,
                "keyword": entry.keyword, "warning": entry.removed_message if entry.removed and self.code == "TL204" else entry.message}
        self.report(node, message, fix=fix, data=data)

    # -- fixes --

    def _replacement_text(self, node: cst.BaseExpression, entry: Deprecation) -> str | None:
        """How this file can name ``entry.replacement``: through the alias the old name was reached by, or ``torch``."""
        new = entry.replacement
        if not new or self.context.knowledge.exists(new) is not True:
            return None  # never suggest what the target release does not have
        root = node
        while isinstance(root, cst.Attribute):
            root = root.value
        if isinstance(root, cst.Name):
            bound = self.context.names.lookup(root.value)
            if bound and (new == bound or new.startswith(bound + ".")):
                return root.value + new[len(bound):]
        head = new.split(".", 1)[0]
        if self.context.names.lookup(head) == head:
            return new
        return None

    def _call_fix(self, call: cst.Call, entry: Deprecation) -> FixSpec | None:
        kind = entry.fix
        if kind is None:
            return None
        new = self._replacement_text(call.func, entry)
        if new is None:
            return None
        positional = [a for a in call.args if a.keyword is None and not a.star]
        simple = all(not a.star for a in call.args)
        ops: list[FixOp] = []
        applicability = "safe"
        old = self.context.code(call.func)
        title = f"Replace `{old}` with `{new}`"
        if kind in ("rename",) or (kind == "one-arg" and len(call.args) == 1 and len(positional) == 1):
            ops.append(Replace(call.func, new))
        elif kind.startswith("first-arg:"):
            first = kind.split(":", 1)[1]
            if call.args:
                ops += [Replace(call.func, new), InsertBefore(call.args[0], f"{first}, ")]
            else:
                ops.append(Replace(call, f"{new}({first})"))
            title = f"Replace `{old}(...)` with `{new}({first}, ...)`"
        elif kind.startswith("keyword:"):
            keyword = kind.split(":", 1)[1]
            if any(a.keyword is not None and a.keyword.value == keyword.split("=")[0] for a in call.args):
                return None
            if call.args:
                ops += [Replace(call.func, new), InsertAfter(call.args[-1].value, f", {keyword}")]
            else:
                ops.append(Replace(call, f"{new}({keyword})"))
            title = f"Replace `{old}(...)` with `{new}(..., {keyword})`"
        elif kind == "list-args" and simple and len(positional) >= 2 and len(positional) == len(call.args):
            items = ", ".join(self.context.code(a.value) for a in positional)
            ops.append(Replace(call, f"{new}([{items}])"))
            title = f"Replace `{old}(a, b, ...)` with `{new}([a, b, ...])`"
        elif kind == "range" and simple and len(positional) == 2:
            start, end = (_int_literal(a.value) for a in positional)
            if start is None or end is None:
                return None
            ops += [Replace(call.func, new), Replace(positional[1].value, str(end + 1))]
            # torch.range gives floats; torch.arange of integers gives int64.
            if not any(a.keyword is not None and a.keyword.value == "dtype" for a in call.args):
                applicability = "unsafe"
            title = f"Replace `{old}({start}, {end})` with `{new}({start}, {end + 1})`"
        else:
            return None
        return FixSpec(title, tuple(ops), applicability=applicability)  # type: ignore[arg-type]

    def _bare_fix(self, node: cst.BaseExpression, entry: Deprecation) -> FixSpec | None:
        """A reference that is not called: a decorator, or an attribute read."""
        new = self._replacement_text(node, entry)
        if new is None or entry.fix is None:
            return None
        if entry.fix.startswith("keyword:"):
            keyword = entry.fix.split(":", 1)[1]
            return FixSpec(f"Replace with `{new}({keyword})`", (Replace(node, f"{new}({keyword})"),))
        if entry.fix == "call-rename":
            return FixSpec(f"Replace with `{new}()`", (Replace(node, f"{new}()"),))
        if entry.fix == "rename":
            return FixSpec(f"Replace with `{new}`", (Replace(node, new),))
        return None

    def _keyword_fix(self, call: cst.Call, entry: Deprecation) -> FixSpec | None:
        if entry.fix != "reduction":
            return None
        args = {a.keyword.value: a for a in call.args if a.keyword is not None}
        if "reduction" in args:
            return None
        given = [args[k] for k in ("size_average", "reduce") if k in args]
        if len(given) != 1:
            return None
        arg = given[0]
        value = _bool_literal(arg.value)
        if value == "?":
            return None
        size_average = value if arg.keyword.value == "size_average" else None  # type: ignore[union-attr]
        reduce = value if arg.keyword.value == "reduce" else None  # type: ignore[union-attr]
        size_average = True if size_average is None else size_average
        reduce = True if reduce is None else reduce
        reduction = "mean" if size_average and reduce else "sum" if reduce else "none"
        old = self.context.code(arg).rstrip(", ")
        return FixSpec(
            f'Replace `{old}` with `reduction="{reduction}"`',
            (Replace(arg.keyword, cst.Name("reduction")), Replace(arg.value, f'"{reduction}"')),  # type: ignore[arg-type]
        )


def _prefixes(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts) - 1, -1, -1)]
