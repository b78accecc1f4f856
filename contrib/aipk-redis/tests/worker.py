"""Worker processes for the multi-process tests: ``python worker.py <mode> <json args> <n>``.

One interpreter imports everything once, then forks ``n`` workers (no threads run before the
fork). Each waits at a barrier in Redis until every worker of its run is ready (so they really
run at once), does its part and prints one JSON line with what happened.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import redis

import aipk
from aipk.credentials import OAuthClient, OAuthEndpoints, OAuthManager
from aipk.limits import ClientLimits
from aipk_redis import RedisStore, RedisTokenStore


def barrier(url: str, name: str, parties: int) -> None:
    client = redis.Redis.from_url(url)
    client.incr(name)
    client.expire(name, 60)
    while int(client.get(name) or 0) < parties:
        time.sleep(0.005)
    client.close()


def limits(args: dict[str, Any]) -> dict[str, Any]:
    store = RedisStore.from_url(args["redis"], namespace=args["namespace"])
    clients = [aipk.Client("openai", api_key=key, base_url=args["base_url"], store=store,
                           limits=ClientLimits(requests_per_minute=args["rpm"]),
                           retry=aipk.RetryPolicy(max_retries=0,
                                                  max_retry_after=args["max_wait"]))
               for key in args["keys"]]
    barrier(args["redis"], args["namespace"] + ":barrier", args["parties"])
    outcomes: list[list[Any]] = []
    for i in range(args["attempts"]):
        index = i % len(clients)
        try:
            clients[index].chat(model="gpt-4o-mini", messages=[aipk.Message.user("hi")])
            outcomes.append([index, "ok", None])
        except aipk.RateLimitError as exc:
            outcomes.append([index, "rate_limited", exc.retry_after])
        except aipk.AipkError as exc:
            outcomes.append([index, type(exc).__name__, None])
    return {"outcomes": outcomes, "fallbacks": store.fallbacks}


def oauth(args: dict[str, Any]) -> dict[str, Any]:
    store = RedisTokenStore.from_url(args["redis"], namespace=args["namespace"],
                                     lease=args["lease"], lock_timeout=20,
                                     encryption_key=args.get("key"))
    client = OAuthClient(OAuthEndpoints(provider="openai", client_id="cli",
                                        token_url=args["token_url"]))
    refresh = client.refresh
    hang = args.get("hang_marker")
    if hang:  # take the lock, say so, then never finish (the test kills this process)
        def refresh(credential: Any) -> Any:  # type: ignore[no-redef]
            Path(hang).write_text(str(os.getpid()))
            time.sleep(3600)
            raise AssertionError("unreachable")
    manager = OAuthManager.from_store("openai", store, refresh=refresh)
    if not hang:
        barrier(args["redis"], args["namespace"] + ":barrier", args["parties"])
    started = time.monotonic()
    token = manager.token("acct")
    return {"access": token.access_token.reveal(), "seconds": time.monotonic() - started}


def main() -> int:
    mode, raw, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    job = {"limits": limits, "oauth": oauth}[mode]
    aipk.Client("openai", api_key="warm-up", base_url="http://127.0.0.1:9")  # load plugins
    children = []
    for _ in range(count):
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                line = json.dumps({"pid": os.getpid(), **job(json.loads(raw))}) + "\n"
                os.write(1, line.encode())  # one write: lines of several children never mix
            except BaseException:
                import traceback

                traceback.print_exc()
                code = 1
            os._exit(code)
        children.append(pid)
    failed = 0
    for pid in children:
        _, status = os.waitpid(pid, 0)
        failed += status != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
