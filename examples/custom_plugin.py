"""A plugin written in the application: a provider for an OpenAI-compatible service (a spec,
nothing else), and a wrapper adding a header to that provider's requests.

Packaged plugins register the same module under the ``aipk.plugins`` entry point (see
docs/tutorial-plugin.md). Runs offline against the loopback emulator (see chat.py).
"""

import aipk
from aipk_testkit.emulator import Emulator, Reply


class AcmePlugin:
    """Hooks are plain functions or methods marked with @aipk.hookimpl."""

    SPEC = aipk.ProviderSpec(name="acme", protocol="openai", display_name="Acme AI",
                             default_base_url="https://api.acme.example/v1",
                             env_vars=("ACME_API_KEY",), default_model="acme-large")

    @aipk.hookimpl
    def aipk_providers(self):
        return [self.SPEC]

    @aipk.hookimpl(wrapper=True)
    def aipk_build_request(self, provider, request, stream):
        built = yield  # built by aipk-openai, which serves protocol "openai"
        if built is not None and provider.name == "acme":
            built = built.with_headers(**{"x-acme-team": "examples"})
        return built


aipk.registry.register(AcmePlugin(), name="acme")

with Emulator() as emulator:
    emulator.enqueue(Reply(text="hello from acme"))
    with aipk.Client("acme", base_url=emulator.url("openai"), api_key="sk-example") as client:
        reply = client.chat(messages=[aipk.Message.user("hi")])
    sent = emulator.requests[-1]
    print("answer:", reply.text, "from", reply.provider)
    print("model:", sent.json()["model"])
    print("header:", sent.headers["x-acme-team"])
