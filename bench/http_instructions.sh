#!/usr/bin/env bash
# Instructions per request over real HTTP: the whole client process (aipk or a raw floor, the
# event loop and the HTTP client included) counted by callgrind while it sends requests to the
# loopback emulator, 50 in flight (CONCURRENCY=1 for sequential). Runs bench/per_request.py's
# worker for 500 and 2,500 requests and divides the difference by 2,000. Needs valgrind.
#
#     bash bench/http_instructions.sh [aiohttp-raw aipk-aiohttp ...]
#
# With 50 in flight the count moves by about ±1% from run to run (how many answers one pass
# of the event loop finds ready varies); repeat it to compare two versions of the code.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONHASHSEED="${PYTHONHASHSEED:-0}"
PY="${PYTHON:-.venv/bin/python}"
CONCURRENCY="${CONCURRENCY:-50}"
log=$(mktemp)
env -u PYTHONDONTWRITEBYTECODE "$PY" -m aipk_testkit.emulator --port 0 --stream-chunks 8 \
  > "$log" 2>&1 &
emulator=$!
trap 'kill $emulator; rm -f "$log"' EXIT
for _ in $(seq 100); do grep -q READY "$log" && break; sleep 0.1; done
url="$(awk '/READY/ {print $2}' "$log")/v1"
count() {
  env -u PYTHONDONTWRITEBYTECODE valgrind --tool=callgrind --callgrind-out-file=/dev/null \
    "$PY" bench/per_request.py --worker "$1" --url "$url" --requests "$2" \
    --concurrency "$CONCURRENCY" 2>&1 >/dev/null | awk '/Collected/ {print $4}'
}
for name in "${@:-aiohttp-raw aipk-aiohttp}"; do
  for client in $name; do
    low=$(count "$client" 500)
    high=$(count "$client" 2500)
    echo "$client: $(( (high - low) / 2000 )) instructions per request"
  done
done
