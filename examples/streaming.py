"""Streaming, sync and async: text as it arrives, then the aggregated response.

Runs offline against the loopback emulator (see chat.py).
"""

import asyncio

import aipk
from aipk_testkit.emulator import Emulator, Reply

PROMPT = [aipk.Message.user("Count to five")]


def sync_stream(base_url: str) -> None:
    with aipk.Client("openai", base_url=base_url, api_key="sk-example") as client:
        with client.stream(model="gpt-4o-mini", messages=PROMPT) as stream:
            for text in stream.text():
                print(text, end="|", flush=True)
        print()
        response = stream.response
        print("finish:", response.finish_reason.value, "tokens out:",
              response.usage.output_tokens)


async def async_stream(base_url: str) -> None:
    async with aipk.AsyncClient("openai", base_url=base_url, api_key="sk-example") as client:
        kinds = []
        async with client.stream(model="gpt-4o-mini", messages=PROMPT) as stream:
            async for event in stream:
                kinds.append(type(event).__name__)
        print("async events:", ", ".join(dict.fromkeys(kinds)))
        print("async text:", (await stream.get_response()).text)


with Emulator() as emulator:
    emulator.enqueue(Reply(text="one two three four five", chunk_size=4, usage=(5, 9)))
    sync_stream(emulator.url("openai"))
    emulator.enqueue(Reply(text="1 2 3 4 5", chunk_size=2))
    asyncio.run(async_stream(emulator.url("openai")))
