import os
import sys
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"


def escape_target() -> Path:
    """A host path a sandboxed snippet must not write: next to the checkout, unless the checkout
    lies under /tmp or /dev/shm, which the sandbox replaces with private scratch space."""
    base = ROOT if not str(ROOT).startswith(("/tmp/", "/dev/shm/")) else Path("/var/tmp")
    return base / f"torchlint-escape-{uuid.uuid4().hex}"
sys.path.insert(0, str(ROOT))



def _seed_candidates() -> list[Path]:
    """Where the tutorial seed articles may be: ../shared/seeds next to this checkout, or next to
    the main checkout when this is a git worktree (its .git is a file naming the main repo)."""
    out = [ROOT.parent / "shared" / "seeds"]
    git = ROOT / ".git"
    if git.is_file():
        line = git.read_text(encoding="utf-8").strip()
        if line.startswith("gitdir:"):
            # <main checkout>/.git/worktrees/<name>
            main = Path(line.split(":", 1)[1].strip()).resolve().parents[2]
            out.append(main.parent / "shared" / "seeds")
    return out


def seeds_dir() -> Path | None:
    """TORCHLINT_SEEDS if set (then it must exist: a wrong path is an error, not a skip), else the first candidate that exists."""
    env = os.environ.get("TORCHLINT_SEEDS")
    if env:
        path = Path(env).expanduser()
        assert path.is_dir(), f"TORCHLINT_SEEDS={env} is not a directory"
        return path
    return next((p for p in _seed_candidates() if p.is_dir()), None)


SEEDS = seeds_dir()
SEEDS_MISSING = (
    "no seed articles: set TORCHLINT_SEEDS=/path/to/seeds (a directory of tutorial *.txt articles); "
    f"looked in {', '.join(str(p) for p in _seed_candidates())}"
)
