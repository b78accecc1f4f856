"""``aipk demo``: the real OpenAI plugin, over real HTTP, against the loopback emulator.

Shows a streamed chat, a tool-call round trip, a 429 that the client waits out using the
provider's own ``retry-after``, the other protocols' plugins, and a key pool moving a call off a
rate-limited key; prints what happened at each step. Needs no network and no key.
"""

from __future__ import annotations

import json
import time
from typing import Any, TextIO

from .errors import AipkError, ConfigurationError

__all__ = ["run_demo"]


def _emulator_module() -> Any:
    try:
        from aipk_testkit import emulator
    except ImportError:
        raise ConfigurationError(
            "aipk demo needs the loopback emulator: pip install aipk-testkit"
        ) from None
    return emulator


def run_demo(out: TextIO) -> int:
    """Run every step; returns 0 when all behaved as expected, 1 otherwise."""
    from ._client import Client
    from ._messages import Message, Tool
    from ._responses import FinishEvent, TextDelta, ToolCallDelta, UsageEvent
    from .registry import default_registry

    def say(text: str = "") -> None:
        print(text, file=out, flush=True)

    default_registry().spec("openai")  # fails early, with the install hint, if missing
    emulator = _emulator_module()
    Emulator, Fault, Reply, ToolCallSpec = (
        emulator.Emulator, emulator.Fault, emulator.Reply, emulator.ToolCallSpec)
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        say(f"   … client waits {seconds:.2f}s before retrying")
        time.sleep(seconds)

    with Emulator() as emu:
        key = "sk-demo-" + "0" * 16
        emu.require_api_key(key)
        emu.set_rate_limit(requests=100, tokens=100_000, window=60.0)
        say(f"aipk demo: loopback OpenAI emulator at {emu.url('openai')}")
        with Client("openai", base_url=emu.url("openai"), api_key=key, sleep=sleep) as client:
            say("\n1. Streamed chat")
            emu.enqueue(Reply(text="Streams arrive as small deltas, decoded as they come.",
                              chunk_size=6))
            out.write("   answer: ")
            with client.stream(model="gpt-4o-mini",
                               messages=[Message.user("How do streams work?")]) as stream:
                pieces = 0
                for event in stream:
                    if isinstance(event, TextDelta):
                        pieces += 1
                        out.write(event.text)
                        out.flush()
                    elif isinstance(event, UsageEvent):
                        usage = event.usage
                    elif isinstance(event, FinishEvent):
                        finish = event.reason.value
                say(f"\n   {pieces} text deltas, finish={finish}, tokens in/out="
                    f"{usage.input_tokens}/{usage.output_tokens}")

            say("\n2. Tool call")
            weather = Tool(name="get_weather", description="Current weather for a city",
                           parameters={"type": "object",
                                       "properties": {"city": {"type": "string"}},
                                       "required": ["city"]})
            emu.enqueue(Reply(tool_calls=[ToolCallSpec(name="get_weather",
                                                       arguments='{"city": "Paris"}')]))
            messages = [Message.user("What's the weather in Paris?")]
            with client.stream(model="gpt-4o-mini", messages=messages, tools=[weather]) as stream:
                fragments = sum(isinstance(e, ToolCallDelta) for e in stream)
                first = stream.response
            call = first.tool_calls[0]
            say(f"   model asked for {call.name}({call.arguments}) in {fragments} fragments")
            result = {"city": call.parsed_arguments()["city"], "celsius": 18}
            emu.enqueue(Reply(text="It is 18 °C in Paris."))
            final = client.chat(model="gpt-4o-mini", tools=[weather], messages=[
                *messages, first.message, Message.tool(call.id, json.dumps(result))])
            sent = emu.requests[-1].json()["messages"][-1]
            say(f"   tool result sent back as role={sent['role']} for {sent['tool_call_id']}")
            say(f"   answer: {final.text}")

            say("\n3. Rate limit: a 429 waited out using the provider's retry-after")
            emu.enqueue(Fault.status(429, retry_after=1.0))
            emu.enqueue(Reply(text="Served after the wait."))
            started = time.monotonic()
            reply = client.chat(model="gpt-4o-mini", messages=[Message.user("Again, please")])
            took = time.monotonic() - started
            say(f"   answer: {reply.text}  (after {took:.2f}s; retry-after was 1.0s)")
            limits = reply.rate_limit
            if limits is not None and limits.requests is not None:
                say(f"   rate limit now: {limits.requests.remaining}/{limits.requests.limit} "
                    f"requests left in this window")
            metrics = client.metrics()
            say(f"\nclient metrics: {metrics.requests} calls, {metrics.retries} retried, "
                f"{metrics.failures} failed, {metrics.input_tokens} tokens in, "
                f"{metrics.output_tokens} tokens out")
        others = _other_protocols(emu, key, say)
        pooled = _key_pool(emu, say)
    ok = (waits == [1.0] and reply.text == "Served after the wait."
          and call.name == "get_weather" and all(others.values()) and pooled)
    say("demo complete: all steps behaved as expected" if ok else "demo FAILED")
    return 0 if ok else 1


_OTHER = {"anthropic": "claude-sonnet-4-5", "gemini": "gemini-2.5-flash"}


def _other_protocols(emu: Any, key: str, say: Any) -> dict[str, bool]:
    """Step 4: the same streamed call through every other installed plugin the emulator speaks."""
    from ._client import Client
    from ._messages import Message
    from .registry import default_registry

    installed = default_registry().specs()
    results: dict[str, bool] = {}
    todo = [name for name in _OTHER if name in installed]
    if not todo:
        return results
    say("\n4. The same stream through the other provider plugins (their own wire protocols)")
    emulator = _emulator_module()
    for name in todo:
        expected = f"Hello from the {name} protocol."
        emu.enqueue(emulator.Reply(text=expected, chunk_size=5))
        with Client(name, base_url=emu.url(name), api_key=key) as client, \
                client.stream(model=_OTHER[name], messages=[Message.user("Hi")]) as stream:
            text = "".join(stream.text())
        wire = emu.requests[-1]
        results[name] = text == expected
        say(f"   {name:<9} {wire.method} {wire.path}: {text!r}")
    return results


def _key_pool(emu: Any, say: Any) -> bool:
    """Step 5: two keys, the first rate-limited: the call moves to the second at once."""
    from ._client import Client
    from ._messages import Message

    emulator = _emulator_module()
    first, second = "sk-demo-first-" + "1" * 8, "sk-demo-second-" + "2" * 8
    emu.require_api_keys(first, second)
    emu.fail_key(first, emulator.Fault.status(429, retry_after=30.0))
    say("\n5. A key pool: the first key is rate-limited, the call moves to the second at once")
    emu.requests.clear()
    with Client("openai", base_url=emu.url("openai"), api_key=[first, second]) as client:
        reply = client.chat(model="gpt-4o-mini", messages=[Message.user("Hi")])
        again = client.chat(model="gpt-4o-mini", messages=[Message.user("Hi again")])
        health = list(client.credentials.health_all().values())  # type: ignore[attr-defined]
    used = [r.headers.get("authorization", "").removeprefix("Bearer ") for r in emu.requests]
    names = {first: "key 1", second: "key 2"}
    say(f"   first call: {' -> '.join(names[k] for k in used[:2])} (429, then served)")
    say(f"   second call: {names[used[-1]]} only (key 1 backs off for "
        f"{health[0].backoff_remaining:.0f}s, as its retry-after said)")
    return bool(reply.text and again.text) and used == [first, second, second]


def main() -> int:  # pragma: no cover - convenience for python -m aipk._demo
    import sys

    try:
        return run_demo(sys.stdout)
    except AipkError as exc:
        print(f"aipk demo: {exc}", file=sys.stderr)
        return 1
