"""The Gemini plugin passes the provider conformance suite against the emulator's Gemini
protocol (``generateContent`` / ``streamGenerateContent?alt=sse``, google.rpc errors)."""

from __future__ import annotations

import pytest

import aipk
from aipk.errors import RateLimitError
from aipk_testkit.conformance import ProviderConformance
from aipk_testkit.emulator import Emulator


class TestGeminiConformance(ProviderConformance):
    provider = "gemini"
    protocol = "gemini"
    model = "gemini-2.5-flash"
    parameter_paths = {"temperature": ("generationConfig", "temperature"),
                       "top_p": ("generationConfig", "topP")}

    def test_rate_limit_state_from_headers(self, aipk_emulator: Emulator,
                                           client: aipk.Client) -> None:
        """Overridden: Gemini sends no rate-limit headers, so a successful reply carries no
        rate-limit state; state comes only from retry information on a 429 (here the
        ``retry-after`` header; the RetryInfo body is covered by the plugin's own tests)."""
        aipk_emulator.set_rate_limit(requests=1, tokens=5000, window=60.0)
        reply = client.chat(model=self.model, messages=self._user())
        assert reply.rate_limit is None
        with pytest.raises(RateLimitError) as info:
            client.chat(model=self.model, messages=self._user(),
                        retry=aipk.RetryPolicy(max_retries=0))
        assert info.value.retry_after is not None and 0 < info.value.retry_after <= 60
        assert info.value.code == "RESOURCE_EXHAUSTED"
        state = client.rate_limits(self.model)
        assert state is not None and state.windows() == {}
        assert state.not_before is not None and state.not_before > state.observed_at
