"""Report whether this interpreter can run `python -m torchlint server`.

The VS Code extension runs this with the interpreter (and PYTHONPATH) it is
about to start the server with, before starting it, so that a missing package
turns into an "Install torchlint?" prompt instead of a server that dies on
start-up. It prints one JSON object on its last line of output.

It is run as a script, not with `-c`, so sys.path[0] is this directory rather
than the current directory: an untrusted workspace cannot plant a `torchlint`
module that this check would import.

Arguments: the modules to import (default: what the server imports). libcst is
listed explicitly because it is the one dependency the extension's bundled copy
cannot carry.
"""

import json
import sys

DEFAULT_MODULES = ("torchlint", "libcst", "pygls", "lsprotocol")


def main(argv):
    modules = argv[1:] or DEFAULT_MODULES
    result = {"version": list(sys.version_info[:3]), "executable": sys.executable}
    try:
        imported = [__import__(name) for name in modules]
        first = imported[0]
        result["torchlint"] = getattr(first, "__version__", None)
        result["location"] = getattr(first, "__file__", None)
    except ImportError as exc:
        result["missing"] = (getattr(exc, "name", None) or "").split(".")[0] or None
        result["error"] = "%s: %s" % (type(exc).__name__, exc)
    except Exception as exc:  # a broken install: report it rather than crash
        result["error"] = "%s: %s" % (type(exc).__name__, exc)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
