"""An analysis process: its side of the pipes, and how the server starts one.

``python -m torchlint.server.child IN_FD OUT_FD [module:Rule ...]`` runs
:func:`child_main`: it loads what a lint needs (the engine, the rules, the
knowledge base the pre-checks read) at once, before the first job arrives, and
then answers jobs one at a time, in order.

Both sides frame their messages the same way (:func:`send`, :func:`recv`: a
length, then a pickle). Nothing here imports asyncio, concurrent.futures or
multiprocessing: the server process starts its first analysis process as it
starts, and then imports pygls on a thread (launch.py), and an import that
thread holds would stall the start (``import asyncio`` there waits until
pygls is loaded); the analysis process itself has no use for them.
"""

from __future__ import annotations

import gc
import importlib
import os
import pickle
import signal
import struct
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

# Jobs on a notebook's JSON (the language server's notebook documents, see notebooks.py)
# and on Markdown buffers' text.
NOTEBOOK_JOBS = ("lint_notebook", "fix_all_notebook", "lint_markdown", "fix_all_markdown")

_HEADER = struct.Struct("!Q")


def send(fd: int, obj: Any) -> None:
    """Write one message (blocking)."""
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    view = memoryview(_HEADER.pack(len(data)) + data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _read_exactly(fd: int, n: int) -> bytes:
    chunks = []
    while n:
        data = os.read(fd, min(n, 1 << 20))
        if not data:
            raise EOFError("the other end closed the pipe")
        chunks.append(data)
        n -= len(data)
    return b"".join(chunks)


def recv(fd: int) -> Any:
    """Read one message (blocking); EOFError when the other end has gone."""
    (n,) = _HEADER.unpack(_read_exactly(fd, _HEADER.size))
    return pickle.loads(_read_exactly(fd, n))


# --- the server's side: starting one ---


def rule_spec(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


@dataclass
class Spawned:
    """A started analysis process and the server's ends of its pipes."""

    process: subprocess.Popen
    to_child: int
    from_child: int
    # A job being written on a thread (launch.py's prelint): nothing else is written before it ends.
    pending: Any = None

    def stop(self) -> None:
        end(self.process, (self.to_child, self.from_child))


def end(process: subprocess.Popen, fds: Sequence[int]) -> None:
    """Kill an analysis process and close the server's ends of its pipes (whatever state they are in)."""
    try:
        process.kill()
        process.wait(timeout=5)
    except Exception:
        pass
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


def spawn(extra_rules: Sequence[type] = ()) -> Spawned:
    """Start an analysis process (raises OSError when that is not possible here)."""
    to_child_r, to_child_w = os.pipe()
    from_child_r, from_child_w = os.pipe()
    # The child sees the modules this process sees (extra rules may live on an added path).
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "torchlint.server.child", str(to_child_r), str(from_child_w)]
            + [rule_spec(r) for r in extra_rules],
            pass_fds=(to_child_r, from_child_w),
            stdin=subprocess.DEVNULL,
            stdout=sys.stderr.fileno() if hasattr(sys.stderr, "fileno") else subprocess.DEVNULL,
            env=env,
            close_fds=True,
        )
    except BaseException:
        for fd in (to_child_w, from_child_r):
            os.close(fd)
        raise
    finally:
        os.close(to_child_r)
        os.close(from_child_w)
    return Spawned(process, to_child_w, from_child_r)


# --- the analysis process's side ---


def _load_rule(spec: str) -> type:
    module, _, qualname = spec.partition(":")
    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def run_notebook_job(kind: str, source: str, path: str, options: Any) -> Any:
    """Lint a notebook or Markdown text (the report, without its text) or fix it (the fixed text)."""
    from dataclasses import replace

    from torchlint.documents import apply_notebook_fixes
    from torchlint.fixes import fix_source
    from torchlint.runner import lint_document_text

    language = kind.rsplit("_", 1)[1]
    options = replace(options, parse_cache=None)  # the cache is for one Python file's successive versions
    if kind.startswith("lint_"):
        report = lint_document_text(source, path, language, options)
        report.source = None
        return report
    lint = lambda s: lint_document_text(s, path, language, options).findings  # noqa: E731
    return fix_source(source, lint, unsafe=False, apply=apply_notebook_fixes if language == "notebook" else None)[0]


def preload() -> None:
    """What the first lint of a PyTorch file needs and loads only once a process: the rules
    (and plugins), and the recorded releases the TL501/TL502 pre-check compares a file with.

    Done as soon as the process starts, while the server still reads the client's first
    messages; a broken plugin is left for the first job to report.
    """
    from torchlint.rules import PluginError, all_rules

    try:
        all_rules()
    except PluginError:
        return
    from torchlint.knowledge.prescan import warm

    warm()


def _prelint_codes(uri: str, text: str, language_id: Any, init_options: Any, cwd: str) -> tuple[str, Any] | None:
    """The path and codes the server will lint a document just opened with, as its service works
    them out (settings.py); None where it would not lint it as a Python file, or cannot tell."""
    from pygls.uris import to_fs_path

    from torchlint.server.settings import ProjectConfigs, parse_settings
    from torchlint.sources import MAX_BYTES

    if not isinstance(uri, str) or not isinstance(text, str) or not uri.startswith("file:"):
        return None
    if language_id != "python" and not (language_id is None and uri.endswith((".py", ".pyi"))):
        return None
    path = to_fs_path(uri)
    if not path:
        return None
    settings = parse_settings(init_options)
    config = ProjectConfigs(cwd).for_file(path, settings)
    limit = MAX_BYTES if config.max_bytes is None else config.max_bytes
    if len(text.encode("utf-8", "surrogatepass")) > limit or "\x00" in text[:8192]:
        return None  # the server shows a notice instead
    return path, config.codes


def serve(in_fd: int, out_fd: int, extra_rules: Sequence[type]) -> None:
    """The child's loop: one job at a time, answers in order.

    A ``prelint`` job (the document the client opened first, sent by launch.py before
    the server can handle it, see there) gets no answer: its report is kept, and the
    ``lint`` job for the same text, path and rules that follows is answered with it.
    """
    from torchlint.codecache import generated_code

    with generated_code("analysis"):
        from torchlint.config import resolved
        from torchlint.docs import rule_url
        from torchlint.engine import LintOptions, lint_source
        from torchlint.incremental import ParseCache
        from torchlint.rules import PluginError, all_rules
        from torchlint.slices import IncrementalLinter

        preload()
    extra = tuple(extra_rules)
    # Successive versions of a document differ in a statement or two: their
    # other statements are not parsed again (the pool sends a document back to
    # the process that linted it last).
    parse_cache = ParseCache()
    # ...and after an edit, the rules re-run only on the statements it can affect (slices.py).
    linter = IncrementalLinter()
    # Objects from imports are never garbage: keep the collector from rescanning them (and
    # from scanning them while they are made: child_main turns it off until now).
    gc.freeze()
    gc.enable()
    kept: tuple[str, str, Any, Any] | None = None  # (path, text, codes, report) of a prelint

    def lint(source: str, path: str, options: LintOptions) -> Any:
        parse_cache.begin(path)
        report = linter.lint(source, path, options)
        parse_cache.end()
        report.source = None  # the parent has the text
        return report

    while True:
        try:
            job = recv(in_fd)
        except (EOFError, OSError):
            return
        kind, source, path, codes = job
        if kind == "prelint":
            try:
                found = _prelint_codes(path, source, *codes)
                if found is not None:
                    path, codes = found
                    options = LintOptions(codes=resolved(codes), extra_rules=extra, parse_cache=parse_cache)
                    kept = (path, source, options.codes, lint(source, path, options))
            except Exception:  # noqa: BLE001 - the server's own lint job reports any problem
                kept = None
            continue
        try:
            options = LintOptions(codes=resolved(codes), extra_rules=extra, parse_cache=parse_cache)
            if kind == "lint":
                if kept is not None and kept[:3] == (path, source, options.codes):
                    report = kept[3]
                else:
                    report = lint(source, path, options)
                kept = None
                answer: tuple[str, Any] = ("ok", report)
            elif kind in NOTEBOOK_JOBS:
                answer = ("ok", run_notebook_job(kind, source, path, options))
            elif kind == "rules":  # the rules loaded and their documentation (the server does not load them)
                answer = ("ok", {code: rule_url(code) for code in sorted(all_rules())})
            elif kind == "fix_all":
                from torchlint.fixes import fix_source

                fixed = fix_source(source, lambda s: lint_source(s, path, options).findings, unsafe=False)[0]
                answer = ("ok", fixed)
            else:
                answer = ("error", f"unknown job {kind!r}")
        except PluginError as exc:
            answer = ("plugin_error", str(exc))
        except BaseException as exc:  # noqa: BLE001 - reported to the parent, which logs it
            answer = ("error", f"{type(exc).__name__}: {exc}")
        try:
            send(out_fd, answer)
        except (EOFError, OSError):
            return


def child_main(argv: Sequence[str]) -> int:
    """``python -m torchlint.server.child IN_FD OUT_FD [module:Rule ...]``"""
    # Importing libcst, the rules and the knowledge base allocates some 90,000 objects that
    # live as long as the process, of which a few hundred are garbage: collecting all along
    # would cost 30 ms of the start-up; serve() freezes what is there and turns it back on.
    gc.disable()
    # Standard output may be the LSP stream of the parent: a stray print here must not land in it.
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    in_fd, out_fd, *specs = argv
    try:
        rules = [_load_rule(spec) for spec in specs]
    except Exception as exc:
        print(f"torchlint worker: cannot load rule: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    serve(int(in_fd), int(out_fd), rules)
    return 0


if __name__ == "__main__":
    sys.exit(child_main(sys.argv[1:]))
