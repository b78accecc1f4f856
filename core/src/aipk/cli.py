"""The ``aipk`` command.

* ``aipk providers``: installed plugins and the providers they serve.
* ``aipk models [PROVIDER]``: models across the configured and installed providers, searched
  by capability, context window and price (``--tools --min-context 100000
  --max-input-price 1``; ``--json`` for scripts; ``--static`` for the built-in tables).
* ``aipk config show`` / ``aipk config check``: the config file's merged, redacted settings
  with each value's origin; validation listing every problem (exit 1 if any).
* ``aipk chat PROVIDER PROMPT``: one streamed answer, printed as it arrives.
* ``aipk demo``: starts the bundled loopback emulator and shows streaming, tool calls and a
  rate-limit recovery through the real plugins; no network and no API key needed.
* ``aipk login PROVIDER``: runs the provider's login flow (browser, or a device code) and saves
  the result in its token file (``--token-file``; default
  [`aipk.credentials.default_token_file()`][aipk.credentials.default_token_file]) under ``--id``
  (default ``default``).
* ``aipk logout PROVIDER``: deletes that saved credential.
* ``aipk health PROVIDER[=BASE_URL]...``: probes each provider (lists models) and prints its
  status, latency and rate-limit headroom; exits 1 if any is unhealthy.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ._cli_config import add_config_parser, add_models_parser
from .errors import AipkError

if TYPE_CHECKING:
    from .credentials import FileTokenStore

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


def _token_store(args: argparse.Namespace) -> tuple[FileTokenStore, Path]:
    from .credentials import FileTokenStore, default_token_file

    path = Path(args.token_file).expanduser() if args.token_file else \
        default_token_file(args.provider)
    return FileTokenStore(path), path


def _login(args: argparse.Namespace) -> int:
    from .credentials import KEY_EXCHANGE, login, login_flow

    flow = login_flow(args.provider, base_url=args.base_url)
    store, path = _token_store(args)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    credential = login(flow, base_url=args.base_url, credential_id=args.id,
                       open_browser=None if args.no_browser else _open_browser,
                       timeout=args.timeout)
    store.save(credential)
    what = "an API key" if credential.extra.get("grant") == KEY_EXCHANGE else "OAuth tokens"
    if credential.expires_at is not None:
        minutes = max(0, round((credential.expires_at - time.time()) / 60))
        what += f" (the access token expires in {minutes} min and is refreshed automatically)"
    print(f"Logged in to {args.provider}: saved {what} as credential {credential.id!r} "
          f"in {path}")
    return 0


def _open_browser(url: str) -> bool:
    import webbrowser

    return webbrowser.open(url)


def _logout(args: argparse.Namespace) -> int:
    store, path = _token_store(args)
    ids = store.list_ids() if path.exists() else []
    if args.id not in ids:
        saved = ", ".join(repr(i) for i in ids) or "none"
        print(f"aipk: error: no credential {args.id!r} for {args.provider} in {path} (saved: "
              f"{saved}); pass --id or --token-file", file=sys.stderr)
        return 1
    store.delete(args.id)
    print(f"Logged out of {args.provider}: deleted credential {args.id!r} from {path}")
    return 0


def _health(args: argparse.Namespace) -> int:
    from .health import check_providers

    return check_providers(args.providers, base_url=args.base_url, timeout=args.timeout)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aipk", description="One client over every AI provider.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("providers", help="list installed provider plugins").set_defaults(
        func=_providers)
    add_models_parser(sub)
    add_config_parser(sub)
    chat = sub.add_parser("chat", help="stream one answer to a prompt")
    chat.add_argument("provider")
    chat.add_argument("prompt")
    chat.add_argument("--model")
    chat.add_argument("--base-url")
    chat.set_defaults(func=_chat)
    sub.add_parser("demo", help="run the offline demo on the loopback emulator").set_defaults(
        func=_demo)
    login = sub.add_parser("login", help="log in to a provider and save the credential")
    login.add_argument("provider")
    login.add_argument("--id", default="default", help="credential id (default: default)")
    login.add_argument("--token-file", help="token file (default: see docs/credentials.md)")
    login.add_argument("--base-url", help="a loopback URL logs in to that local test server")
    login.add_argument("--no-browser", action="store_true",
                       help="print the sign-in address instead of opening a browser")
    login.add_argument("--timeout", type=float, default=300.0,
                       help="seconds to wait for the browser sign-in (default 300)")
    login.set_defaults(func=_login)
    logout = sub.add_parser("logout", help="delete a saved credential")
    logout.add_argument("provider")
    logout.add_argument("--id", default="default")
    logout.add_argument("--token-file")
    logout.set_defaults(func=_logout)
    health = sub.add_parser("health", help="probe providers; exit 1 if any is unhealthy")
    health.add_argument("providers", nargs="+", metavar="PROVIDER[=BASE_URL]")
    health.add_argument("--base-url", help="base URL for the providers given without one")
    health.add_argument("--timeout", type=float, default=10.0,
                        help="seconds each probe waits to connect and for each read (10)")
    health.set_defaults(func=_health)
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
