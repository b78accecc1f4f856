"""A tool-call round trip: the model asks for a function, the program runs it and sends the
result back, the model answers.

Runs offline against the loopback emulator (see chat.py).
"""

import json

import aipk
from aipk_testkit.emulator import Emulator, Reply, ToolCallSpec

WEATHER = aipk.Tool(
    name="get_weather",
    description="Current weather for a city",
    parameters={"type": "object", "properties": {"city": {"type": "string"}},
                "required": ["city"]},
)


def get_weather(city: str) -> dict[str, object]:
    return {"city": city, "celsius": 18}


with Emulator() as emulator:
    emulator.enqueue(Reply(tool_calls=[ToolCallSpec(name="get_weather",
                                                    arguments='{"city": "Paris"}')]))
    emulator.enqueue(Reply(text="It is 18 °C in Paris."))

    with aipk.Client("openai", base_url=emulator.url("openai"), api_key="sk-example") as client:
        messages = [aipk.Message.user("What's the weather in Paris?")]
        first = client.chat(model="gpt-4o-mini", messages=messages, tools=[WEATHER])
        print("finish:", first.finish_reason.value)
        messages.append(first.message)
        for call in first.tool_calls:
            print(f"model calls {call.name}({call.arguments})")
            result = get_weather(**call.parsed_arguments())
            messages.append(aipk.Message.tool(call.id, json.dumps(result), name=call.name))
        final = client.chat(model="gpt-4o-mini", messages=messages, tools=[WEATHER])
        print("answer:", final.text)
