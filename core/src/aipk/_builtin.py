"""aipk's own plugin: cross-cutting wrappers and fallbacks every provider gets.

* ``aipk_build_request`` wrapper: adds the user's extra headers (``Client(headers=...)``) to the
  request whatever provider built it, and logs the request (redacted) at debug level.
* ``aipk_apply_credential`` fallback: ``Authorization: Bearer <key>`` for API keys and OAuth
  tokens, nothing for ``kind="none"``; plugins override it for other schemes.
* ``aipk_map_error`` fallback: the generic status mapping, for plugins that do not map errors.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Generator, Mapping
from typing import Any

from ._errormap import error_for_status
from ._http import HttpRequest, redact_url
from ._messages import ChatRequest
from ._providers import Credential, Provider
from .errors import ProviderError
from .hookspecs import hookimpl

log = logging.getLogger("aipk.http")


@hookimpl(wrapper=True)
def aipk_build_request(
    provider: Provider, request: ChatRequest, stream: bool
) -> Generator[None, HttpRequest | None, HttpRequest | None]:
    built = yield
    if built is not None and provider.headers:
        built = built.merge_headers(provider.headers)
    if built is not None and log.isEnabledFor(logging.DEBUG):
        log.debug("%s %s %s stream=%s", provider.name, built.method, redact_url(built.url), stream)
    return built


@hookimpl(trylast=True)
def aipk_apply_credential(
    provider: Provider, http_request: HttpRequest, credential: Credential
) -> HttpRequest | None:
    if credential.kind == "none" or credential.secret is None:
        return http_request
    return http_request.merge_headers({"authorization": f"Bearer {credential.secret.reveal()}"})


@hookimpl(trylast=True)
def aipk_map_error(
    provider: Provider, status: int, headers: Mapping[str, str], data: Any,
    request_id: str | None,
) -> ProviderError | None:
    message = data if isinstance(data, str) and data else None
    return error_for_status(provider=provider.name, status=status, headers=headers, body=data,
                            message=message, request_id=request_id, now=time.time())
