"""Structured output: ask for an answer shaped like a dataclass and get an instance back, from
a plain call, a stream, and a second provider; an answer that breaks the schema is a typed
error that keeps the raw text.

Runs offline against the loopback emulator (see chat.py).
"""

import json
from dataclasses import dataclass, field
from typing import Literal

import aipk
from aipk.errors import StructuredOutputError
from aipk_testkit.emulator import Emulator, Reply


@dataclass
class City:
    """A city and a few facts about it."""

    name: str
    country: str
    population: int
    kind: Literal["capital", "city"] = "city"
    rivers: list[str] = field(default_factory=list)


OSLO = {"name": "Oslo", "country": "Norway", "population": 709037, "kind": "capital",
        "rivers": ["Akerselva", "Alna"]}
QUESTION = [aipk.Message.user("Describe Oslo")]

with Emulator() as emulator:
    emulator.enqueue(Reply(text=json.dumps(OSLO)))
    emulator.enqueue(Reply(text=json.dumps(OSLO), chunk_size=24))
    emulator.enqueue(Reply(text=json.dumps({**OSLO, "population": "many"})))

    with aipk.Client("openai", base_url=emulator.url("openai"), api_key="sk-example") as client:
        reply = client.chat(model="gpt-4o-mini", messages=QUESTION, response_format=City)
        city = reply.parsed  # a City
        print("parsed:", city)
        sent = emulator.requests[-1].json()["response_format"]
        print("sent:", sent["type"], sent["json_schema"]["name"],
              "strict" if sent["json_schema"]["strict"] else "not strict")

        with client.stream(model="gpt-4o-mini", messages=QUESTION,
                           response_format=City) as stream:
            pieces = list(stream.text())  # the JSON text as it arrives
        print("streamed:", len(pieces), "pieces ->", stream.response.parsed.rivers)

        try:
            client.chat(model="gpt-4o-mini", messages=QUESTION, response_format=City)
        except StructuredOutputError as error:
            print("refused:", error.path, "-", error.problems[0][1])
            print("raw text kept:", error.text[:30] + "...")

        # output_retries=1: the broken answer goes back to the model with what is wrong, and
        # the model (here the emulator, queued) answers again.
        emulator.enqueue(Reply(text=json.dumps({**OSLO, "population": "many"})),
                         Reply(text=json.dumps(OSLO)))
        reply = client.chat(model="gpt-4o-mini", messages=QUESTION, response_format=City,
                            output_retries=1)
        told = emulator.requests[-1].json()["messages"][-1]["content"]
        print("asked again:", told.splitlines()[1], "->", reply.parsed.population)

    # Another provider, the same request: Anthropic's own field carries the schema. With
    # nothing queued the emulator answers JSON that follows the schema it received.
    with aipk.Client("anthropic", base_url=emulator.url("anthropic"),
                     api_key="sk-ant-example") as client:
        reply = client.chat(model="claude-haiku-4-5", messages=QUESTION, response_format=City)
        print("anthropic sent:", sorted(emulator.requests[-1].json()["output_config"]))
        print("anthropic parsed:", type(reply.parsed).__name__, reply.parsed.kind)
