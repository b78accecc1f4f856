"""A router over two providers: the first fails with server errors, the router fails over to
the second, and the failing target cools down.

Runs offline: one emulator plays both providers (see chat.py).
"""

import aipk
from aipk.router import CooldownPolicy
from aipk_testkit.emulator import Emulator, Fault, Reply

with Emulator() as emulator:
    targets = [
        aipk.Target(provider="openai", model="gpt-4o-mini", api_key="sk-example",
                    base_url=emulator.url("openai")),
        aipk.Target(provider="anthropic", model="claude-sonnet-4-5", api_key="sk-example",
                    base_url=emulator.url("anthropic")),
    ]
    with aipk.Router(targets, strategy="failover",
                     cooldown=CooldownPolicy(server_error=60.0)) as router:
        emulator.enqueue(Fault.status(503), Reply(text="answered by the fallback"))
        reply = router.chat(messages=[aipk.Message.user("hi")])
        print("answer:", reply.text, "from", reply.provider)

        emulator.enqueue(Reply(text="still the fallback"))
        reply = router.chat(messages=[aipk.Message.user("again")])
        print("answer:", reply.text, "from", reply.provider)
        print("requests sent:", " ".join(r.path for r in emulator.requests))
        for name, target in router.metrics()["targets"].items():
            print(f"  {name}: breaker {target['breaker']}, "
                  f"cooling down {target['cooldown_remaining'] > 0}")
