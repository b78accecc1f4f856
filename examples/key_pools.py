"""A key pool: several keys for one provider. A rate-limited key is backed off for as long as
the provider's retry-after says, and calls move to the next key at once.

Runs offline against the loopback emulator (see chat.py). Against the real service, a comma
list in the provider's variable (``OPENAI_API_KEY=sk-1,sk-2``) makes the same pool.
"""

import aipk
from aipk_testkit.emulator import Emulator, Fault, Reply

FIRST, SECOND = "sk-example-first-11111111", "sk-example-second-2222222"

with Emulator() as emulator:
    emulator.set_default(Reply(text="served"))
    emulator.require_api_keys(FIRST, SECOND)
    emulator.fail_key(FIRST, Fault.status(429, retry_after=30.0))

    with aipk.Client("openai", base_url=emulator.url("openai"),
                     api_key=[FIRST, SECOND]) as client:
        for n in range(3):
            reply = client.chat(model="gpt-4o-mini", messages=[aipk.Message.user("hi")])
            print(f"call {n + 1}: {reply.text}")
        used = [r.headers["authorization"].removeprefix("Bearer ") for r in emulator.requests]
        print("keys tried:", " ".join("first" if key == FIRST else "second" for key in used))
        print("calls moved to another key:", client.metrics()["failovers"])
        for health in client.credentials.health_all().values():
            state = ("available" if health.available
                     else f"backing off {health.backoff_remaining:.0f}s")
            print(f"  {health.id}: {state}")
