"""A worker process for the multi-process tests: ``python worker.py <mode> <json args>``.

It waits at a barrier in Redis until every worker of its run is ready (so they really run at
once), does its part and prints one JSON line with what happened.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import redis


def barrier(url: str, name: str, parties: int) -> None:
    client = redis.Redis.from_url(url)
    client.incr(name)
    client.expire(name, 60)
    while int(client.get(name) or 0) < parties:
        time.sleep(0.005)
    client.close()


def limits(args: dict[str, Any]) -> dict[str, Any]:
    import aipk
    from aipk.limits import ClientLimits
    from aipk_redis import RedisStore

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
    from aipk.credentials import OAuthClient, OAuthEndpoints, OAuthManager
    from aipk_redis import RedisTokenStore

    store = RedisTokenStore.from_url(args["redis"], namespace=args["namespace"],
                                     lease=args["lease"], lock_timeout=20,
                                     encryption_key=args.get("key"))
    client = OAuthClient(OAuthEndpoints(provider="openai", client_id="cli",
                                        token_url=args["token_url"]))
    refresh = client.refresh
    hang = args.get("hang_marker")
    if hang:  # take the lock, say so, then never finish (the test kills this process)
        def refresh(credential: Any) -> Any:  # type: ignore[no-redef]
            Path(hang).write_text("refreshing")
            time.sleep(3600)
            raise AssertionError("unreachable")
    manager = OAuthManager.from_store("openai", store, refresh=refresh)
    if not hang:
        barrier(args["redis"], args["namespace"] + ":barrier", args["parties"])
    started = time.monotonic()
    token = manager.token("acct")
    return {"access": token.access_token.reveal(), "seconds": time.monotonic() - started}


if __name__ == "__main__":
    mode, raw = sys.argv[1], sys.argv[2]
    result = {"limits": limits, "oauth": oauth}[mode](json.loads(raw))
    print(json.dumps(result), flush=True)
