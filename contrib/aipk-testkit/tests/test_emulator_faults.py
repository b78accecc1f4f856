"""Faults, API-key checks and rate limits, over real sockets."""

from __future__ import annotations

import http.client as httpclient
import json
import socket
import time
from typing import Any

import pytest

from aipk_testkit.emulator import Emulator, Fault, Reply

# -- status faults -------------------------------------------------------------------------------


def test_429_with_retry_after_and_an_openai_error_body(emu: Emulator, http: Any) -> None:
    emu.enqueue(Fault.status(429, retry_after=1.5), Fault.status(429, retry_after=30,
                                                                 retry_after_ms=250))
    r = http.chat()
    assert (r.status, r.reason) == (429, "Too Many Requests")
    assert r.headers["retry-after"] == "1.5" and "retry-after-ms" not in r.headers
    assert r.headers["x-request-id"].startswith("req_")
    assert r.json()["error"]["code"] == "rate_limit_exceeded"
    assert set(r.json()["error"]) == {"message", "type", "param", "code"}
    r = http.chat()
    assert (r.headers["retry-after"], r.headers["retry-after-ms"]) == ("30", "250")
    assert http.chat().status == 200  # the queue is used up


@pytest.mark.parametrize(("status", "reason", "error_type"), [
    (400, "Bad Request", "invalid_request_error"),
    (500, "Internal Server Error", "server_error"),
    (503, "Service Unavailable", "server_error"),
    (529, "Site Overloaded", "server_error")])
def test_error_statuses(emu: Emulator, http: Any, status: int, reason: str,
                        error_type: str) -> None:
    emu.enqueue(Fault.status(status))
    r = http.chat(stream=True)
    assert (r.status, r.reason) == (status, reason)
    assert r.headers["content-type"] == "application/json"
    assert r.json()["error"]["type"] == error_type and r.json()["error"]["message"]


def test_fault_constructors_validate() -> None:
    with pytest.raises(ValueError, match="4xx or 5xx"):
        Fault.status(200)
    with pytest.raises(ValueError, match="negative"):
        Fault.slow_first_byte(-1)
    with pytest.raises(ValueError, match="negative"):
        Fault.stall(-0.5)
    with pytest.raises(ValueError, match="chunk_size"):
        Reply(text="x", chunk_size=0)


def test_enqueue_rejects_other_types(emu: Emulator) -> None:
    with pytest.raises(TypeError, match="Reply or Fault"):
        emu.enqueue("hello")  # type: ignore[arg-type]


# -- timing --------------------------------------------------------------------------------------


def test_slow_first_byte_delays_the_head(emu: Emulator, http: Any) -> None:
    emu.enqueue(Fault.slow_first_byte(0.3),
                Fault.slow_first_byte(0.1, then=Reply(text="late")),
                Fault.slow_first_byte(0.1, then=Fault.status(503)))
    started = time.monotonic()
    r = http.chat()
    assert time.monotonic() - started >= 0.3
    assert r.json()["choices"][0]["message"]["content"] == "echo: Hello there"
    assert http.chat(stream=True).chunks()[1]["choices"][0]["delta"]["content"] == "late"
    assert http.chat().status == 503


def test_slow_first_byte_times_out_a_client_and_the_server_survives(emu: Emulator,
                                                                     http: Any) -> None:
    emu.enqueue(Fault.slow_first_byte(0.4))
    conn = http.connection(timeout=0.1)
    conn.request("POST", "/v1/chat/completions", body=b'{"model":"m","messages":[1]}')
    with pytest.raises(socket.timeout):
        conn.getresponse()
    conn.close()
    time.sleep(0.4)  # the delayed write finds the connection gone
    assert http.chat().status == 200


def test_a_slow_response_does_not_block_other_connections(emu: Emulator, http: Any) -> None:
    emu.enqueue(Fault.slow_first_byte(0.5))
    slow = http.connection()
    slow.request("POST", "/v1/chat/completions",
                 body=b'{"model":"m","messages":[{"role":"user","content":"slow"}]}')
    time.sleep(0.05)
    started = time.monotonic()
    assert http.chat().status == 200
    assert time.monotonic() - started < 0.3
    assert slow.getresponse().status == 200
    slow.close()


def _read_with_gaps(s: socket.socket) -> list[tuple[float, bytes]]:
    """(seconds since the previous read, bytes) for each recv until the server closes."""
    out: list[tuple[float, bytes]] = []
    last = time.monotonic()
    while chunk := s.recv(65536):
        now = time.monotonic()
        out.append((now - last, chunk))
        last = now
    return out


def test_stall_goes_silent_mid_stream_then_finishes(emu: Emulator, http: Any) -> None:
    emu.enqueue(Fault.stall(0.4, after_events=2, reply=Reply(text="abcdefghijkl", chunk_size=2)))
    with socket.create_connection(("127.0.0.1", emu.port), timeout=5) as s:
        s.sendall(http.chat_bytes(stream=True))
        reads = _read_with_gaps(s)
    body = b"".join(chunk for _, chunk in reads)
    before = b"".join(chunk for gap, chunk in reads if gap < 0.3)
    after = b"".join(chunk for gap, chunk in reads if gap >= 0.3)
    assert before.startswith(b"HTTP/1.1 200 OK\r\n") and before.count(b"data: ") == 2
    assert after and after.count(b"data: ") >= 2  # the rest came after the silence
    assert body.endswith(b"data: [DONE]\n\n\r\n0\r\n\r\n")  # then the complete stream


def test_stall_mid_body_and_before_the_first_event(emu: Emulator, http: Any) -> None:
    emu.enqueue(Fault.stall(0.3), Fault.stall(0.3, after_events=0))
    started = time.monotonic()
    r = http.chat()
    assert time.monotonic() - started >= 0.3
    assert r.json()["choices"][0]["message"]["content"] == "echo: Hello there"
    conn = http.connection(timeout=0.1)  # the head comes at once, the first event does not
    conn.request("POST", "/v1/chat/completions", body=http.chat_bytes().split(b"\r\n\r\n")[1])
    response = conn.getresponse()
    assert response.status == 200
    with pytest.raises(socket.timeout):
        response.read1(1)
    conn.close()
    time.sleep(0.3)  # the rest finds the connection gone
    assert http.chat().status == 200


def test_trickle_sends_the_rest_one_byte_at_a_time(emu: Emulator, http: Any) -> None:
    emu.enqueue(Fault.trickle(0.002, after_events=2, reply=Reply(text="abcdefgh", chunk_size=2)))
    with socket.create_connection(("127.0.0.1", emu.port), timeout=5) as s:
        s.sendall(http.chat_bytes(stream=True))
        reads = _read_with_gaps(s)
    first = reads[0][1]
    assert first.startswith(b"HTTP/1.1 200 OK\r\n") and first.count(b"data: ") == 2
    rest = reads[1:]
    # a byte per write: reads are tiny (a busy machine may let a read gather a few writes)
    sizes = sorted(len(chunk) for _, chunk in rest)
    assert len(rest) > 50 and sizes[len(sizes) // 2] <= 2
    assert max(gap for gap, _ in rest) < 0.5  # never silent for long
    body = b"".join(chunk for _, chunk in reads)
    assert body.endswith(b"data: [DONE]\n\n\r\n0\r\n\r\n")  # the complete stream


def test_trickle_a_whole_body(emu: Emulator, http: Any) -> None:
    emu.enqueue(Fault.trickle(0.002, reply=Reply(text="slow")))
    started = time.monotonic()
    r = http.chat()
    assert r.json()["choices"][0]["message"]["content"] == "slow"
    assert time.monotonic() - started >= 0.002 * len(r.body)
    with pytest.raises(ValueError, match="positive"):
        Fault.trickle(0)


@pytest.mark.parametrize("stream", [False, True])
def test_wrong_encoding_labels_a_plain_body(emu: Emulator, http: Any, stream: bool) -> None:
    emu.enqueue(Fault.wrong_encoding("br"))
    r = http.chat(stream=stream)
    assert r.status == 200 and r.headers["content-encoding"] == "br"
    if stream:
        assert r.events()[-1] == "[DONE]"  # the usual stream, not compressed
    else:
        assert r.json()["choices"][0]["message"]["content"] == "echo: Hello there"


def test_truncate_counting_from_the_end(emu: Emulator, http: Any) -> None:
    reply = Reply(text="twelve chars", chunk_size=4)
    emu.enqueue(Fault.truncate(after_events=-1, reply=reply),
                Fault.truncate(after_events=10**6, reply=reply))
    r = http.chat(stream=True, include_usage=True)
    chunks = r.chunks()
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"  # the usage chunk is gone
    assert "[DONE]" not in r.events() and all("usage" not in c or c["usage"] is None
                                              for c in chunks)
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == (
        "twelve chars")
    r = http.chat(stream=True, include_usage=True)
    assert r.chunks()[-1]["usage"]["total_tokens"] > 0 and "[DONE]" not in r.events()


# -- broken streams ------------------------------------------------------------------------------


def test_reset_mid_stream_aborts_after_the_events(emu: Emulator, http: Any) -> None:
    emu.enqueue(Fault.reset_mid_stream(after_events=3))
    received = b""
    with socket.create_connection(("127.0.0.1", emu.port), timeout=5) as s:
        s.sendall(http.chat_bytes(stream=True, close=False))
        with pytest.raises(ConnectionResetError):
            while chunk := s.recv(65536):
                received += chunk
    assert received.startswith(b"HTTP/1.1 200 OK\r\n")
    assert received.count(b"data: ") == 3
    assert not received.endswith(b"0\r\n\r\n") and b"[DONE]" not in received


@pytest.mark.parametrize("stream", [True, False])
def test_reset_is_a_connection_error_for_a_client(emu: Emulator, http: Any,
                                                  stream: bool) -> None:
    emu.enqueue(Fault.reset_mid_stream(after_events=2))
    with pytest.raises((httpclient.IncompleteRead, ConnectionResetError)):
        http.chat(stream=stream)


def test_truncate_ends_cleanly_without_done(emu: Emulator, http: Any) -> None:
    emu.enqueue(Fault.truncate(after_events=3), Fault.truncate(after_events=1))
    conn = http.connection()
    r = http.request("POST", "/v1/chat/completions", json.dumps(
        {"model": "m", "stream": True, "messages": [{"role": "user", "content": "x"}]}).encode(),
        conn=conn)
    assert r.status == 200 and len(r.events()) == 3 and "[DONE]" not in r.events()
    assert all(c["choices"][0]["finish_reason"] is None for c in r.chunks())
    r = http.request("POST", "/v1/chat/completions", json.dumps(  # same connection: still alive
        {"model": "m", "messages": [{"role": "user", "content": "x"}]}).encode(), conn=conn)
    conn.close()
    assert r.status == 200 and int(r.headers["content-length"]) == len(r.body)
    with pytest.raises(ValueError):
        json.loads(r.body)


@pytest.mark.parametrize("kind", ["malformed_json", "invalid_utf8"])
def test_malformed_and_invalid_utf8(emu: Emulator, http: Any, kind: str) -> None:
    fault = Fault.malformed_json() if kind == "malformed_json" else Fault.invalid_utf8()
    emu.enqueue(fault, fault)
    r = http.chat()
    assert r.status == 200
    error = UnicodeDecodeError if kind == "invalid_utf8" else json.JSONDecodeError
    with pytest.raises(error):
        json.loads(r.body)
    r = http.chat(stream=True)
    datas = [line[6:] for line in r.body.split(b"\n") if line.startswith(b"data: ")]
    assert datas[-1] == b"[DONE]"
    bad = [d for d in datas[:-1] if not _parses(d)]
    assert len(bad) == 1
    if kind == "invalid_utf8":
        with pytest.raises(UnicodeDecodeError):
            bad[0].decode("utf-8")


def _parses(data: bytes) -> bool:
    try:
        json.loads(data.decode("utf-8"))
    except ValueError:
        return False
    return True


def test_inband_error_after_normal_events(emu: Emulator, http: Any) -> None:
    emu.enqueue(Fault.inband_error(message="Overloaded", code="server_error"),
                Fault.inband_error(message="Overloaded"))
    r = http.chat(stream=True)
    assert r.status == 200
    chunks = r.chunks()
    assert "[DONE]" not in r.events() and len(chunks) == 4
    assert all("choices" in c for c in chunks[:3])
    assert chunks[-1] == {"error": {"message": "Overloaded", "type": "server_error",
                                    "param": None, "code": "server_error"}}
    r = http.chat()
    assert r.status == 200 and r.json()["error"]["message"] == "Overloaded"


# -- API keys and rate limits --------------------------------------------------------------------


def test_require_api_key(emu: Emulator, http: Any) -> None:
    emu.require_api_key("sk-test")
    emu.enqueue(Reply(text="authorized"))
    missing = http.chat()
    assert (missing.status, missing.reason) == (401, "Unauthorized")
    assert "didn't provide an API key" in missing.json()["error"]["message"]
    wrong = http.chat(headers={"Authorization": "Bearer sk-wrong-secret"})
    assert wrong.status == 401 and wrong.json()["error"]["code"] == "invalid_api_key"
    assert b"sk-wrong-secret" not in wrong.body
    assert "Incorrect API key provided: sk-********cret." in wrong.json()["error"]["message"]
    ok = http.chat(headers={"Authorization": "Bearer sk-test"})
    assert ok.json()["choices"][0]["message"]["content"] == "authorized"
    emu.require_api_key(None)
    assert http.chat().status == 200


def test_rate_limit_counts_down_then_429(emu: Emulator, http: Any) -> None:
    emu.set_rate_limit(requests=3, tokens=1000, window=60.0)
    seen = []
    for _ in range(3):
        emu.enqueue(Reply(text="ok", usage=(10, 5)))
        r = http.chat()
        assert r.status == 200 and r.headers["x-ratelimit-limit-requests"] == "3"
        assert r.headers["x-ratelimit-limit-tokens"] == "1000"
        assert r.headers["x-ratelimit-reset-requests"].endswith("s")
        seen.append((r.headers["x-ratelimit-remaining-requests"],
                     r.headers["x-ratelimit-remaining-tokens"]))
    assert seen == [("2", "985"), ("1", "970"), ("0", "955")]
    emu.enqueue(Reply(text="after the window"))
    limited = http.chat()
    assert limited.status == 429 and limited.json()["error"]["code"] == "rate_limit_exceeded"
    assert 55 <= int(limited.headers["retry-after"]) <= 60
    assert 55_000 <= int(limited.headers["retry-after-ms"]) <= 60_000
    assert limited.headers["x-ratelimit-remaining-requests"] == "0"
    emu.set_rate_limit(requests=3, tokens=1000, window=60.0)  # a fresh budget
    assert http.chat().json()["choices"][0]["message"]["content"] == "after the window"


def test_rate_limit_window_resets_and_tokens_limit(emu: Emulator, http: Any) -> None:
    emu.set_rate_limit(requests=1, tokens=1000, window=0.3)
    assert http.chat().status == 200
    limited = http.chat()
    assert limited.status == 429 and limited.headers["retry-after"] == "1"
    assert int(limited.headers["retry-after-ms"]) <= 300
    time.sleep(0.35)
    assert http.chat().status == 200
    emu.set_rate_limit(requests=100, tokens=10, window=60)
    emu.enqueue(Reply(text="big", usage=(6, 6)))
    r = http.chat()
    assert r.status == 200 and r.headers["x-ratelimit-remaining-tokens"] == "0"
    limited = http.chat()
    assert limited.status == 429 and limited.json()["error"]["type"] == "tokens"


def test_reset_clears_everything(emu: Emulator, http: Any) -> None:
    emu.enqueue(Fault.status(500))
    emu.require_api_key("sk-x")
    emu.set_rate_limit(requests=1, tokens=10, window=60)
    emu.set_default(Reply(text="sticky"))
    http.chat()
    emu.reset()
    assert emu.requests == []
    r = http.chat()
    assert r.status == 200 and "x-ratelimit-limit-requests" not in r.headers
    assert r.json()["choices"][0]["message"]["content"] == "echo: Hello there"


# -- cut after the head, per-key scripts -------------------------------------------------------


@pytest.mark.parametrize("stream", [True, False])
def test_reset_after_headers_sends_the_head_then_aborts(emu: Emulator, http: Any,
                                                        stream: bool) -> None:
    emu.enqueue(Fault.reset_after_headers())
    received = b""
    with socket.create_connection(("127.0.0.1", emu.port), timeout=5) as s:
        s.sendall(http.chat_bytes(stream=stream, close=False))
        with pytest.raises(ConnectionResetError):
            while chunk := s.recv(65536):
                received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and body == b""
    framing = b"transfer-encoding: chunked" if stream else b"content-length: "
    assert framing in head.lower()
    if not stream:  # the head promised a body that never came
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        assert length > 0


def _bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def test_enqueue_for_key_serves_that_key_first_in_arrival_order(emu: Emulator,
                                                                 http: Any) -> None:
    emu.enqueue_for_key("k1", Fault.status(429, retry_after=2),
                        Fault.status(429, retry_after_ms=100))
    emu.enqueue(Reply(text="global"))
    assert http.chat(headers=_bearer("k2")).json()["choices"][0]["message"]["content"] == \
        "global"  # another key takes the global queue
    first = http.chat(headers=_bearer("k1"))
    second = http.chat(headers=_bearer("k1"))
    assert (first.status, first.headers["retry-after"]) == (429, "2")
    assert (second.status, second.headers["retry-after-ms"]) == (429, "100")
    assert http.chat(headers=_bearer("k1")).status == 200  # that key's queue is used up
    with pytest.raises(TypeError, match="Reply or Fault"):
        emu.enqueue_for_key("k1", "nope")  # type: ignore[arg-type]
    emu.enqueue_for_key("k1", Fault.status(500))
    emu.reset()
    assert http.chat(headers=_bearer("k1")).status == 200  # reset clears per-key queues


def test_fail_key_at_a_rate_picks_among_faults_reproducibly(emu: Emulator, http: Any) -> None:
    faults = [Fault.status(503), Fault.status(500)]
    emu.fail_key("k1", faults, rate=0.3, seed=7)
    statuses = [http.chat(headers=_bearer("k1")).status for _ in range(200)]
    failed = [s for s in statuses if s != 200]
    assert 30 <= len(failed) <= 90 and set(failed) == {500, 503}
    assert all(http.chat(headers=_bearer("k2")).status == 200 for _ in range(20))
    emu.fail_key("k1", faults, rate=0.3, seed=7)
    assert [http.chat(headers=_bearer("k1")).status for _ in range(200)] == statuses
    with pytest.raises(ValueError, match="rate"):
        emu.fail_key("k1", faults, rate=0.0)
    with pytest.raises(TypeError, match="Fault"):
        emu.fail_key("k1", [])
    emu.fail_key("k1", None)
    assert http.chat(headers=_bearer("k1")).status == 200
