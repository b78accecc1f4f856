"""A candidate's sources (ai.google.dev/gemini-api/docs/google-search, /url-context and the
``Candidate`` reference): ``groundingMetadata`` of Google Search grounding,
``urlContextMetadata`` of the URL context tool and ``citationMetadata`` are kept in
``ChatResponse.extra`` whole; in a stream the latest grounding and URL metadata are kept and
every chunk's citation sources are joined in order."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

import aipk_gemini.plugin
from aipk import ChatRequest, ChatResponse, Message
from aipk_gemini import GEMINI
from aipk_testkit.fixtures import make_engine

REQUEST = ChatRequest(model="gemini-2.5-flash", messages=[Message.user("Who won euro 2024?")])
USAGE = {"promptTokenCount": 12, "candidatesTokenCount": 30, "totalTokenCount": 42}
GROUNDING = {  # the grounding guide's example response
    "webSearchQueries": ["UEFA Euro 2024 winner", "who won euro 2024"],
    "searchEntryPoint": {"renderedContent": "<!-- HTML and CSS for the search widget -->"},
    "groundingChunks": [
        {"web": {"uri": "https://vertexaisearch.cloud.google.com/g/1", "title": "aljazeera.com"}},
        {"web": {"uri": "https://vertexaisearch.cloud.google.com/g/2", "title": "uefa.com"}}],
    "groundingSupports": [
        {"segment": {"startIndex": 0, "endIndex": 85, "text": "Spain won Euro 2024"},
         "groundingChunkIndices": [0]},
        {"segment": {"startIndex": 86, "endIndex": 210, "text": "This victory marks"},
         "groundingChunkIndices": [0, 1]}]}
URLS = {"urlMetadata": [{"retrievedUrl": "https://www.uefa.com/euro2024/",
                         "urlRetrievalStatus": "URL_RETRIEVAL_STATUS_SUCCESS"}]}


def _engine() -> Any:
    return make_engine(GEMINI, {"gemini": aipk_gemini.plugin})


def _chunk(text: str, finish: str | None = None, **metadata: Any) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": [{"text": text}]},
                                 "index": 0, **metadata}
    if finish:
        candidate["finishReason"] = finish
    return {"candidates": [candidate], "usageMetadata": USAGE,
            "modelVersion": "gemini-2.5-flash", "responseId": "r1"}


def _stream(*chunks: Any) -> ChatResponse:
    session = _engine().open_stream(REQUEST, {}, None)
    session.feed("".join(f"data: {json.dumps(c)}\r\n\r\n" for c in chunks).encode())
    session.finish()
    return session.response()


def test_a_whole_answer_keeps_its_sources() -> None:
    citations = {"citationSources": [{"startIndex": 0, "endIndex": 20,
                                      "uri": "https://example.org/euro", "license": ""}]}
    body = _chunk("Spain won Euro 2024, defeating England 2-1 in the final.", "STOP",
                  groundingMetadata=GROUNDING, urlContextMetadata=URLS,
                  citationMetadata=citations)
    response = _engine().chat_response(REQUEST, json.dumps(body).encode(), {}, None)
    assert response.text.startswith("Spain won")
    assert response.extra["groundingMetadata"] == GROUNDING
    assert response.extra["urlContextMetadata"] == URLS
    assert response.extra["citationMetadata"] == citations


def test_a_stream_keeps_the_grounding_of_its_last_chunk() -> None:
    response = _stream(_chunk("Spain won Euro 2024, "),
                       _chunk("defeating England 2-1.", "STOP", groundingMetadata=GROUNDING,
                              urlContextMetadata=URLS))
    assert response.text == "Spain won Euro 2024, defeating England 2-1."
    assert response.extra["groundingMetadata"] == GROUNDING
    assert response.extra["urlContextMetadata"] == URLS
    assert "citationMetadata" not in response.extra
    assert "groundingMetadata" not in _stream(_chunk("Hi", "STOP")).extra


SOURCES = st.lists(st.lists(st.builds(lambda n: {"uri": f"https://example.org/{n}",
                                                 "startIndex": n, "endIndex": n + 1},
                                      st.integers(0, 99)), max_size=3),
                   min_size=1, max_size=5)


@given(SOURCES)
def test_streamed_citation_sources_are_joined_in_order(per_chunk: list[list[Any]]) -> None:
    chunks = [_chunk(f"t{n} ", "STOP" if n == len(per_chunk) - 1 else None,
                     **({"citationMetadata": {"citationSources": sources}} if sources else {}))
              for n, sources in enumerate(per_chunk)]
    response = _stream(*chunks)
    joined = [source for sources in per_chunk for source in sources]
    assert response.text == "".join(f"t{n} " for n in range(len(per_chunk)))
    if joined:
        assert response.extra["citationMetadata"] == {"citationSources": joined}
    else:
        assert "citationMetadata" not in response.extra
