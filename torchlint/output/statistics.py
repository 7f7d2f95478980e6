"""``--statistics``: how many findings of each rule, instead of the findings themselves."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from typing import TextIO

from torchlint.diagnostics import FileReport
from torchlint.output import is_fixable


@dataclass(frozen=True)
class Row:
    code: str
    name: str
    count: int
    fixable: int


def rows(reports: list[FileReport], unsafe_fixes: bool = False) -> list[Row]:
    counts: Counter[str] = Counter()
    fixable: Counter[str] = Counter()
    names: dict[str, str] = {}
    for r in reports:
        for f in r.findings:
            counts[f.code] += 1
            names[f.code] = f.name
            if is_fixable(f, unsafe_fixes):
                fixable[f.code] += 1
    # Most frequent first, like ruff; code breaks ties.
    return [Row(c, names[c], n, fixable[c]) for c, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]


def write(table: list[Row], stream: TextIO, fmt: str = "text") -> None:
    if fmt == "json":
        stream.write(
            json.dumps(
                [{"code": r.code, "name": r.name, "count": r.count, "fixable": r.fixable > 0} for r in table], indent=2
            )
            + "\n"
        )
        return
    if not table:
        return
    cw = max(len(str(r.count)) for r in table)
    kw = max(len(r.code) for r in table)
    for r in table:
        mark = "[*]" if r.fixable else "[ ]"
        stream.write(f"{str(r.count).rjust(cw)}\t{r.code.ljust(kw)}\t{mark} {r.name}\n")
