#!/usr/bin/env bash
# Instructions per request (chat, achat, engine) or per chunk (stream) of aipk's own work, counted by
# callgrind: exact and unmoved by other load on the machine, unlike timings. Needs valgrind
# (apt-get install valgrind). AIPK_BENCH_EXPORTER=prometheus,otel installs exporters first
# (see bench/micro.py). Runs N and N + 2,000 iterations and divides the difference.
set -euo pipefail
cd "$(dirname "$0")/.."
# A fixed hash seed: with a random one, the interpreter's start-up alone varies by millions of
# instructions from run to run, which would show as ±1,000 instructions per iteration.
export PYTHONHASHSEED="${PYTHONHASHSEED:-0}"
PY="${PYTHON:-.venv/bin/python}"
count() {
  valgrind --tool=callgrind --callgrind-out-file=/dev/null "$PY" bench/micro.py --only "$1" \
    --n "$2" 2>&1 | awk '/Collected/ {print $4}'
}
for loop in "${@:-chat achat engine stream}"; do
  for name in $loop; do
    low=$(count "$name" 200)
    high=$(count "$name" 2200)
    echo "$name: $(( (high - low) / 2000 )) instructions per iteration"
  done
done
