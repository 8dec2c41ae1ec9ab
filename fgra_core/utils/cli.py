"""How the command lines (``fgra-train``, ``fgra-study``, ``fgra-claims``) end.

* a user mistake (any :class:`~fgra_core.utils.errors.FGRAError`) is one line ``error: ...`` on
  stderr and exit status 2 (:data:`EXIT_ERROR`), never a traceback;
* Ctrl-C is one line saying how to resume and exit status 130 (:data:`EXIT_INTERRUPTED`, the
  shell's 128 + SIGINT).
"""
from __future__ import annotations

import sys
from typing import Callable

from fgra_core.utils.errors import FGRAError

EXIT_ERROR = 2
EXIT_INTERRUPTED = 130

RESUME_TRAIN = ("interrupted: run the same command again to resume from the last finished epoch "
                "(checkpoints/last.pt in the run folder)")
RESUME_STUDY = ("interrupted: run the same command again to resume the study (finished runs are kept; "
                "the run in progress resumes from its last finished epoch)")


WRAP_AT = 200   # a message listing several items that is longer than this is wrapped


def error_line(exc: BaseException) -> str:
    """``error: <message>``: one line (a message listing several items is joined with '; '), or,
    when such a message is longer than :data:`WRAP_AT` characters, one ``error:`` line followed by
    the items, each on an indented line."""
    parts = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    text = ""
    for part in parts:
        text += part if not text else (" " if text.endswith(":") else "; ") + part
    if len(parts) > 1 and len(text) > WRAP_AT:
        return "error: " + parts[0] + "".join(f"\n  - {part}" for part in parts[1:])
    return f"error: {text or type(exc).__name__}"


def print_error(exc: BaseException) -> int:
    print(error_line(exc), file=sys.stderr, flush=True)
    return EXIT_ERROR


def run_cli(body: Callable[[], int], *, interrupted: str) -> int:
    """``body()``'s exit status; an ``FGRAError`` -> one ``error:`` line and 2, Ctrl-C -> ``interrupted`` and 130."""
    try:
        return body()
    except FGRAError as exc:
        return print_error(exc)
    except KeyboardInterrupt:
        sys.stderr.write("\n" + interrupted + "\n")
        sys.stderr.flush()
        return EXIT_INTERRUPTED


def emit(text: str, out: str | None) -> None:
    """A command's result: written atomically to ``out`` when given, else printed."""
    if out:
        from fgra_core.utils.io import atomic_write_text

        atomic_write_text(out, text)
    else:
        print(text)
