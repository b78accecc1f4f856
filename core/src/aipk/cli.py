"""The ``aipk`` command.

* ``aipk providers``: installed plugins and the providers they serve.
* ``aipk models PROVIDER``: a provider's models (``--static`` for the built-in list).
* ``aipk chat PROVIDER PROMPT``: one streamed answer, printed as it arrives.
* ``aipk demo``: starts the bundled loopback emulator and shows streaming, tool calls and a
  rate-limit recovery through the real plugins; no network and no API key needed.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .errors import AipkError

__all__ = ["main"]


def _providers(_: argparse.Namespace) -> int:
    from .registry import default_registry

    registry = default_registry()
    plugins = registry.available()
    if not plugins:
        print("no provider plugins installed; try: pip install aipk-openai")
        return 0
    registry.load()
    specs = registry.specs()
    for info in registry.available():
        state = "loaded" if info.loaded else f"FAILED: {info.error}" if info.error else "not loaded"
        origin = f"{info.distribution} {info.version}" if info.distribution else "in-process"
        print(f"{info.name:<14} {origin:<26} {state}")
        for name in info.providers:
            spec = specs[name]
            print(f"  - {name:<12} {spec.default_base_url}  (key: "
                  f"{', '.join(spec.env_vars) or 'none'})")
    return 0


def _models(args: argparse.Namespace) -> int:
    from ._client import Client
    from .registry import default_registry

    if args.static:  # the plugin's own list: no key, no request
        models = list(default_registry().spec(args.provider).models)
    else:
        with Client(args.provider, base_url=args.base_url) as client:
            models = client.models()
    for model in models:
        window = f"  context {model.context_window:,}" if model.context_window else ""
        print(f"{model.id}{window}")
    return 0


def _chat(args: argparse.Namespace) -> int:
    from ._client import Client
    from ._messages import Message

    with Client(args.provider, base_url=args.base_url) as client:
        kwargs = {"model": args.model} if args.model else {}
        with client.stream(messages=[Message.user(args.prompt)], **kwargs) as stream:
            for text in stream.text():
                print(text, end="", flush=True)
        print()
    return 0


def _demo(args: argparse.Namespace) -> int:
    from ._demo import run_demo

    return run_demo(out=sys.stdout)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aipk", description="One client over every AI provider.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("providers", help="list installed provider plugins").set_defaults(
        func=_providers)
    models = sub.add_parser("models", help="list a provider's models")
    models.add_argument("provider")
    models.add_argument("--base-url")
    models.add_argument("--static", action="store_true", help="the plugin's built-in list")
    models.set_defaults(func=_models)
    chat = sub.add_parser("chat", help="stream one answer to a prompt")
    chat.add_argument("provider")
    chat.add_argument("prompt")
    chat.add_argument("--model")
    chat.add_argument("--base-url")
    chat.set_defaults(func=_chat)
    sub.add_parser("demo", help="run the offline demo on the loopback emulator").set_defaults(
        func=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``aipk`` command."""
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except AipkError as exc:
        print(f"aipk: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
