"""The HTTP layer and the server: keep-alive, framing, concurrency, sticky replies, the CLI."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from aipk_testkit.emulator import Emulator, Reply


def _dechunk(raw: bytes) -> tuple[bytes, list[bytes]]:
    """Split a raw chunked response into its head and its chunk payloads (last one empty)."""
    head, _, rest = raw.partition(b"\r\n\r\n")
    chunks = []
    while rest:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line, 16)
        chunks.append(rest[:size])
        assert rest[size:size + 2] == b"\r\n"
        rest = rest[size + 2:]
    return head, chunks


def test_one_http_chunk_per_sse_event(emu: Emulator, http: Any) -> None:
    emu.enqueue(Reply(text="abcdefghij", chunk_size=2))
    head, chunks = _dechunk(http.raw(http.chat_bytes(stream=True)))
    assert b"transfer-encoding: chunked" in head.lower() and b"connection: close" in head
    assert chunks[-1] == b"" and chunks[-2] == b"data: [DONE]\n\n"
    events = chunks[:-1]
    assert len(events) == 1 + 5 + 1 + 1  # role, deltas, finish, [DONE]
    assert all(c.startswith(b"data: ") and c.endswith(b"\n\n") and c.count(b"\n\n") == 1
               for c in events)


def test_keep_alive_serves_two_requests_on_one_connection(emu: Emulator, http: Any) -> None:
    conn = http.connection()
    first = http.request("POST", "/v1/chat/completions", b'{"model":"m","stream":true,'
                         b'"messages":[{"role":"user","content":"a"}]}', conn=conn)
    local = conn.sock.getsockname()
    second = http.request("GET", "/v1/models", conn=conn)
    assert conn.sock.getsockname() == local
    conn.close()
    assert first.events()[-1] == "[DONE]" and second.json()["object"] == "list"
    assert "connection" not in first.headers and "connection" not in second.headers


def test_pipelined_requests_are_answered_in_order(emu: Emulator, http: Any) -> None:
    emu.enqueue(Reply(text="first"))
    raw = http.raw(http.chat_bytes(stream=False, close=False, user="a")
                   + http.chat_bytes(stream=False, close=True, user="b"))
    assert raw.count(b"HTTP/1.1 200 OK") == 2
    assert raw.index(b'"first"') < raw.index(b'"echo: b"')


def test_http_1_0_closes_and_expect_continue(emu: Emulator, http: Any) -> None:
    raw = http.raw(b"GET /v1/models HTTP/1.0\r\nHost: x\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 200 OK") and b"connection: close" in raw
    body = b'{"model":"m","messages":[{"role":"user","content":"hi"}]}'
    with socket.create_connection(("127.0.0.1", emu.port), timeout=5) as s:
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                  b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(body))
        assert s.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        s.sendall(body)
        assert b"echo: hi" in s.recv(65536)


@pytest.mark.parametrize(("data", "status"), [
    (b"NONSENSE\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nbad header line\r\n\r\n", 400),
    (b"POST /v1/chat/completions HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 411),
    (b"POST /v1/chat/completions HTTP/1.1\r\nContent-Length: -4\r\n\r\n", 400)])
def test_broken_http_is_rejected_and_closed(emu: Emulator, http: Any, data: bytes,
                                            status: int) -> None:
    raw = http.raw(data)
    assert raw.startswith(b"HTTP/1.1 %d " % status)
    assert b'"error"' in raw and b"connection: close" in raw


def test_repeated_headers_are_joined(emu: Emulator, http: Any) -> None:
    http.raw(b"GET /v1/models HTTP/1.1\r\nX-A: 1\r\nx-a: 2\r\nConnection: close\r\n\r\n")
    assert emu.requests[-1].headers["x-a"] == "1, 2"


def test_fifty_concurrent_clients(emu: Emulator, http: Any) -> None:
    def one(i: int) -> str:
        r = http.chat(messages=[{"role": "user", "content": f"n{i}"}], stream=i % 2 == 0)
        if i % 2 == 0:
            return "".join(c["choices"][0]["delta"].get("content", "") for c in r.chunks())
        return str(r.json()["choices"][0]["message"]["content"])

    with ThreadPoolExecutor(max_workers=50) as pool:
        texts = list(pool.map(one, range(50)))
    assert texts == [f"echo: n{i}" for i in range(50)]
    assert len(emu.requests) == 50


def test_sticky_default_is_served_from_cache(emu: Emulator, http: Any) -> None:
    emu.set_default(Reply(text="always the same", chunk_size=5, usage=(3, 4)))
    emu.enqueue(Reply(text="scripted first"))
    assert http.chat().json()["choices"][0]["message"]["content"] == "scripted first"
    one, two = http.chat(stream=True), http.chat(stream=True)
    assert one.body == two.body  # precomputed bytes, ids included
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in one.chunks()) == (
        "always the same")
    other = http.chat(model="gpt-4o").json()
    assert other["model"] == "gpt-4o" and other["choices"][0]["message"]["content"] == (
        "always the same")
    assert one.headers["x-request-id"] != two.headers["x-request-id"]
    emu.set_default(None)
    assert http.chat().json()["choices"][0]["message"]["content"] == "echo: Hello there"


def test_a_twenty_thousand_chunk_stream(emu: Emulator, http: Any) -> None:
    emu.set_default(Reply(text="abcd" * 20_000, chunk_size=4))
    chunks = http.chat(stream=True, include_usage=True).chunks()
    deltas = [c["choices"][0]["delta"].get("content") for c in chunks[1:-2]]
    assert len(deltas) == 20_000 and "".join(deltas) == "abcd" * 20_000


def test_stop_closes_idle_connections_and_start_errors_surface() -> None:
    emu = Emulator()
    emu.start()
    thread = emu._thread
    assert thread is not None and thread.is_alive()
    with pytest.raises(RuntimeError, match="already running"):
        emu.start()
    with socket.create_connection(("127.0.0.1", emu.port), timeout=5) as s:
        s.sendall(b"GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n")
        assert s.recv(65536).startswith(b"HTTP/1.1 200")
        with pytest.raises(OSError), Emulator(port=emu.port):  # the port is taken
            pass
        emu.stop()
        try:
            after_stop = s.recv(65536)
        except ConnectionResetError:
            after_stop = b""
        assert after_stop == b""
    assert not thread.is_alive()
    with pytest.raises(ValueError, match="unknown protocols"):
        Emulator(protocols=["nope"])


def test_command_line_entry_point() -> None:
    proc = subprocess.Popen([sys.executable, "-m", "aipk_testkit.emulator", "--port", "0",
                             "--stream-chunks", "5"], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.fullmatch(r"READY (http://127\.0\.0\.1:(\d+))\n", line)
        assert match, line
        import http.client as httpclient

        conn = httpclient.HTTPConnection("127.0.0.1", int(match.group(2)), timeout=5)
        body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
        conn.request("POST", "/v1/chat/completions", body=json.dumps(body))
        text = json.loads(conn.getresponse().read())["choices"][0]["message"]["content"]
        conn.request("POST", "/v1/chat/completions", body=json.dumps({**body, "stream": True}))
        raw = conn.getresponse().read().decode()
        conn.close()
        deltas = [json.loads(x[6:])["choices"][0]["delta"].get("content")
                  for x in raw.split("\n\n") if x.startswith("data: {")][1:-1]
        assert len(text) == 20 and deltas == [text[i:i + 4] for i in range(0, 20, 4)]
        proc.send_signal(signal.SIGTERM)
        started = time.monotonic()
        assert proc.wait(timeout=5) == 0 and time.monotonic() - started < 5
        assert proc.stdout.read() == ""  # exactly one line
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
