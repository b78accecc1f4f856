"""``python -m aipk_testkit.emulator --port 0 [--stream-chunks N]``: the emulator in its own
process. Prints exactly one line, ``READY http://127.0.0.1:PORT``, then serves until SIGTERM or
SIGINT. With ``--stream-chunks N`` every chat request gets the same precomputed reply: N deltas
of 4 characters (non-streaming requests get the same text). Requests are not recorded.
"""

from __future__ import annotations

import argparse
import sys

from . import Emulator, Reply

_WORDS = "lorem ipsum dolor sit amet consectetur adipiscing elit "


def stream_text(chunks: int) -> str:
    """The ``4 * chunks`` characters of the ``--stream-chunks`` reply."""
    need = 4 * chunks
    return (_WORDS * (need // len(_WORDS) + 1))[:need]


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, serve, return the exit status."""
    parser = argparse.ArgumentParser(prog="python -m aipk_testkit.emulator",
                                     description="Loopback AI provider emulator.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--stream-chunks", type=int, default=None, metavar="N",
                        help="serve every request a sticky reply of N 4-character deltas")
    parser.add_argument("--models", default=None, help="comma-separated model ids to list")
    parser.add_argument("--rate-limit", type=int, default=None, metavar="N",
                        help="budget N requests (and 1000 N tokens) per minute, so every "
                             "response carries the protocol's rate-limit headers")
    args = parser.parse_args(argv)
    models = [m for m in args.models.split(",") if m] if args.models else None
    emu = Emulator(host=args.host, port=args.port, models=models, record=False)
    if args.stream_chunks is not None:
        if args.stream_chunks < 1:
            parser.error("--stream-chunks must be at least 1")
        text = stream_text(args.stream_chunks)
        emu.set_default(Reply(text=text, chunk_size=4, usage=(10, args.stream_chunks)))
    if args.rate_limit is not None:
        if args.rate_limit < 1:
            parser.error("--rate-limit must be at least 1")
        emu.set_rate_limit(args.rate_limit, 1000 * args.rate_limit)

    def ready(url: str) -> None:
        sys.stdout.write(f"READY {url}\n")
        sys.stdout.flush()

    emu.serve_forever(ready)
    return 0


if __name__ == "__main__":
    sys.exit(main())
