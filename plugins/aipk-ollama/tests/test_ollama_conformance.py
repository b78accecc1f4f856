"""The native Ollama plugin passes the provider conformance suite against the emulator's Ollama
protocol (``/api/chat`` with NDJSON streams, ``{"error": ...}`` bodies)."""

from __future__ import annotations

import pytest

import aipk
from aipk.errors import RateLimitError
from aipk_testkit.conformance import ProviderConformance
from aipk_testkit.emulator import Emulator


class TestOllamaNativeConformance(ProviderConformance):
    provider = "ollama-native"
    protocol = "ollama"
    model = "llama3.1:8b"
    parameter_paths = {"temperature": ("options", "temperature"), "top_p": ("options", "top_p")}

    def test_rate_limit_state_from_headers(self, aipk_emulator: Emulator,
                                           client: aipk.Client) -> None:
        """Overridden: Ollama sends no rate-limit headers, so a reply carries no state; a 429's
        ``retry-after`` is still kept."""
        aipk_emulator.set_rate_limit(requests=1, tokens=5000, window=60.0)
        reply = client.chat(model=self.model, messages=self._user())
        assert reply.rate_limit is None
        with pytest.raises(RateLimitError) as info:
            client.chat(model=self.model, messages=self._user(),
                        retry=aipk.RetryPolicy(max_retries=0))
        assert info.value.retry_after is not None and 0 < info.value.retry_after <= 60
        state = client.rate_limits(self.model)
        assert state is not None and state.not_before is not None
