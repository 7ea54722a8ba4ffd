"""Command line: ``cutkit <command>`` or ``python -m cutkit <command>``.

Commands:
    demo      the main job: CUT on the bundled default model and data, before/after figures
    train     CUT-train a LoRA adapter on a judgment file (every CUTConfig / TrainingArguments
              option is accepted, e.g. --threshold 1.2 --ul_weight 0.5 --max_steps 100)
    inspect   score which response tokens the judgments flag, write an HTML token report
    online    answer new instructions, judge them (rules, a local model or an API), train a
              fresh LoRA with CUT (or sft / hindsight), repeat; resumable
    compare   train CUT and the baselines from the same start and budget over several seeds;
              write the per-run table and the mean / spread per objective

Run ``cutkit <command> --help`` for the options of each. Every command parses its options the
same way (cutkit.cli.arguments), so a setting has the same option everywhere: --model, --output,
--template, --threshold, --seed, the LoRA (--lora_r, --lora_alpha, --lora_dropout) and the budget
(--learning_rate, --epochs or --num_train_epochs, --batch_size or --per_device_train_batch_size;
cutkit train takes CUTConfig's own).

Errors: bad input (a missing or malformed file, data the objective cannot train on, an unknown
template, a setting out of range, an output that cannot be written) stops the command before any
model loads, with one line on stderr, ``cutkit <command>: error: <what, where, what to do>``, and
exit status 2. ``--debug`` (anywhere on the command line) or ``CUTKIT_DEBUG=1`` shows the Python
traceback instead; an unexpected internal error always shows it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from cutkit.cli.compare import compare_main
from cutkit.cli.demo import demo_main
from cutkit.cli.inspect import inspect_main
from cutkit.cli.online import online_main
from cutkit.cli.train import train_main

COMMANDS = {
    "demo": demo_main,
    "train": train_main,
    "inspect": inspect_main,
    "compare": compare_main,
    "online": online_main,
}


DEBUG_FLAG = "--debug"
DEBUG_ENV = "CUTKIT_DEBUG"
"""``--debug`` on the command line, or this environment variable set (not 0/false/empty), shows
the traceback of an error :func:`main` would print as one line."""

_PACKAGE_DIR = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    """Run ``cutkit <command> ...``; returns the exit status (0, or 2 for bad input: see
    :func:`is_input_error`). The console script and ``python -m cutkit`` exit with it."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = DEBUG_FLAG in argv or os.environ.get(DEBUG_ENV, "").strip().lower() not in (
        "",
        "0",
        "false",
        "no",
    )
    argv = [arg for arg in argv if arg != DEBUG_FLAG]
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if argv else 2
    if argv[0] not in COMMANDS:
        print(
            f"cutkit: error: unknown command {argv[0]!r}; choose one of {', '.join(COMMANDS)} "
            "(cutkit --help lists them)",
            file=sys.stderr,
        )
        return 2
    command = argv[0]
    try:
        COMMANDS[command](argv[1:])
    except Exception as error:
        if debug or not is_input_error(error):
            raise
        print(f"cutkit {command}: error: {error_message(error)}", file=sys.stderr)
        return 2
    return 0


def is_input_error(error: BaseException) -> bool:
    """Whether ``error`` is cutkit's report of bad input, printed as one line by :func:`main`:

    - :class:`~cutkit.data.records.RecordError` (a record or file cutkit cannot use),
      :class:`~cutkit.models.registry.ModelNotFoundError`, :class:`~cutkit.cli.checks.CommandError`
      (the commands' checks before any work),
      :class:`~cutkit.online.judges.http.JudgeCallError` (a judge endpoint that refuses) and
      :class:`~cutkit.online.judges.base.JudgeUnavailable` (every judge call of a round failed);
    - ``OSError`` naming a path (a missing input file, a folder given for a file, no permission);
    - ``ValueError`` / ``TypeError`` raised by cutkit's own code (its settings and data checks:
      the innermost frame of the traceback is in the cutkit package).

    Anything else (an error inside torch, transformers or another library, an ``AssertionError``,
    a ``KeyError``, ...) is unexpected and keeps its traceback."""
    from cutkit.cli.checks import CommandError
    from cutkit.data.records import RecordError
    from cutkit.models.registry import ModelNotFoundError
    from cutkit.online.judges.base import JudgeUnavailable
    from cutkit.online.judges.http import JudgeCallError

    input_errors = (RecordError, ModelNotFoundError, CommandError, JudgeCallError, JudgeUnavailable)
    if isinstance(error, input_errors):
        return True
    if isinstance(error, OSError):
        return error.filename is not None or isinstance(error, FileNotFoundError)
    if isinstance(error, (ValueError, TypeError)):
        tb = error.__traceback__
        while tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
        if tb is None:
            return False
        return Path(tb.tb_frame.f_code.co_filename).resolve().is_relative_to(_PACKAGE_DIR)
    return False


def error_message(error: BaseException) -> str:
    """The one line :func:`main` prints for ``error`` (an OSError as "what: path")."""
    if isinstance(error, OSError) and error.filename is not None and error.strerror:
        message = f"{error.strerror}: {error.filename}"
    else:
        message = str(error) or type(error).__name__
    return " ".join(message.split())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
