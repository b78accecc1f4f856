"""One chat call, then a follow-up turn: the answer, its usage and the rate limits the
provider reported.

Runs offline: it starts the loopback provider emulator from aipk-testkit and points the
client at it. Against the real service, drop ``base_url=`` and set ``OPENAI_API_KEY``.
"""

import aipk
from aipk_testkit.emulator import Emulator, Reply

with Emulator() as emulator:
    emulator.set_rate_limit(requests=100, tokens=10_000)
    emulator.enqueue(Reply(text="The sky scatters blue light most.", usage=(12, 7)))
    emulator.enqueue(Reply(text="Rayleigh scattering.", usage=(25, 3)))

    with aipk.Client("openai", base_url=emulator.url("openai"), api_key="sk-example") as client:
        messages = [aipk.Message.system("Be brief."),
                    aipk.Message.user("Why is the sky blue?")]
        reply = client.chat(model="gpt-4o-mini", messages=messages, temperature=0)
        print("answer:", reply.text)
        print("tokens:", reply.usage.input_tokens, "in,", reply.usage.output_tokens, "out")
        print("finish:", reply.finish_reason.value)
        print("requests left:", reply.rate_limit.requests.remaining)

        messages += [reply.message, aipk.Message.user("And its name?")]
        print("follow-up:", client.chat(model="gpt-4o-mini", messages=messages).text)
