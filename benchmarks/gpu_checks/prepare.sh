#!/usr/bin/env bash
# Fill .gpu-carry/ (git-ignored) with what run.py needs on a GPU machine that reaches no package
# registry: run it HERE, on a machine with PyPI and cutkit's environment, before the device call.
#
#   bash scripts/dev.sh bash benchmarks/gpu_checks/prepare.sh [--with-deepspeed]
#
# .gpu-carry/COMMIT                     the commit (the device copy of the tree has no .git)
# .gpu-carry/smollm2-135m-instruct/     the default model's config and tokenizer, no weights: run.py
#                                       trains random weights of its shape when the real ones are
#                                       absent (the weights' wheel, 98 MB, is over the 64 MiB a call
#                                       carries)
# .gpu-carry/whl/                       device-wheels.txt as cp312 manylinux / pure-Python wheels
#                                       (--with-deepspeed: also the deepspeed sdist and its needs)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
CARRY=.gpu-carry
PYTHON="${PYTHON:-python}"
rm -rf "$CARRY" && mkdir -p "$CARRY/whl"
git rev-parse HEAD > "$CARRY/COMMIT"

model="$("$PYTHON" -c 'from cutkit.models.registry import resolve_checkpoint; print(resolve_checkpoint())')"
mkdir -p "$CARRY/smollm2-135m-instruct"
find "$model" -maxdepth 1 -type f ! -name '*.safetensors' -exec cp {} "$CARRY/smollm2-135m-instruct/" \;

download=("$PYTHON" -m pip download --quiet --disable-pip-version-check --no-deps -d "$CARRY/whl"
  --only-binary=:all: --python-version 3.12 --implementation cp
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64)
grep -v '^#' benchmarks/gpu_checks/device-wheels.txt | grep . | while read -r requirement; do
  "${download[@]}" "$requirement" || { echo "prepare.sh: no cp312 wheel for $requirement" >&2; exit 1; }
done

if [ "${1:-}" = "--with-deepspeed" ]; then
  # DeepSpeed ships as an sdist only: the device command builds it without its C++ ops (JIT)
  "$PYTHON" -m pip download --quiet --no-deps --no-binary deepspeed -d "$CARRY/whl" deepspeed
  for requirement in hjson pydantic pydantic-core annotated-types typing-inspection; do
    "${download[@]}" "$requirement"
  done
fi

size=$(du -sm "$CARRY" | cut -f1)
echo "$CARRY: ${size} MiB ($(ls "$CARRY/whl" | wc -l) wheels); the tree carries at most 64 MiB in all"
[ "$size" -le 56 ] || { echo "prepare.sh: $CARRY is too large to travel with the tree" >&2; exit 1; }
