#!/usr/bin/env bash
# Instructions per chunk of a stream read over a real socket, transport included, counted by
# callgrind (exact and unmoved by other load, unlike chunks/s). For each client (default: the
# aiohttp pair) it runs `bench/per_request.py --stream`'s worker (one warm-up stream, one timed
# stream) under callgrind against an emulator serving N-chunk streams, then N + 10,000: the
# difference over the 20,000 more chunks read is what one chunk costs the client process, aipk's
# work and the HTTP client's. The emulator runs outside callgrind. Needs valgrind.
#   bash bench/stream_instructions.sh [aiohttp-raw aipk-aiohttp httpx-raw aipk-httpx]
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONHASHSEED="${PYTHONHASHSEED:-0}"  # a fixed seed, as bench/instructions.sh
unset PYTHONDONTWRITEBYTECODE  # workers load aipk from bytecode, as bench/run.py's do
PY="${PYTHON:-.venv/bin/python}"
LOW=1000
EXTRA=10000
count() {  # client chunks -> instructions of one worker
  coproc EMU { exec "$PY" -m aipk_testkit.emulator --port 0 --stream-chunks "$2"; }
  local line
  read -r line <&"${EMU[0]}"
  local url="${line#READY }/v1"
  valgrind --tool=callgrind --callgrind-out-file=/dev/null "$PY" bench/per_request.py \
    --worker "$1" --url "$url" --stream "$2" --stream-len $((4 * $2)) 2>&1 \
    | awk '/Collected/ {print $4}'
  kill "$EMU_PID"
  wait "$EMU_PID" 2>/dev/null || true
}
"$PY" -m compileall -q core/src plugins/*/src contrib/*/src >/dev/null
for client in "${@:-aiohttp-raw aipk-aiohttp}"; do
  for name in $client; do
    low=$(count "$name" "$LOW")
    high=$(count "$name" $((LOW + EXTRA)))
    echo "$name: $(( (high - low) / (2 * EXTRA) )) instructions per chunk"
  done
done
