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
"""

from __future__ import annotations

import sys

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


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        print(__doc__.strip())
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    COMMANDS[argv[0]](argv[1:])
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
