"""aipk's own plugin: the fallbacks every provider gets. (The user's extra headers and the
debug log of each request are added by the engine itself, so the per-request hooks have no
wrapper unless a plugin brings one.)

* ``aipk_apply_credential`` fallback: ``Authorization: Bearer <key>`` for API keys and OAuth
  tokens, nothing for ``kind="none"``; plugins override it for other schemes.
* ``aipk_map_error`` fallback: the generic status mapping, for plugins that do not map errors.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from ._errormap import error_for_status
from ._http import HttpRequest, _HttpRequestBuilder
from ._providers import Credential, Provider, Secret
from .errors import ProviderError
from .hookspecs import hookimpl

_new = object.__new__


@hookimpl(trylast=True)
def aipk_apply_credential(
    provider: Provider, http_request: HttpRequest, credential: Credential
) -> HttpRequest | None:
    secret = credential.secret
    if secret is None or credential.kind == "none":
        return http_request
    if type(secret) is not Secret:  # a subclass may reveal another value each time
        return http_request.merge_headers({"authorization": f"Bearer {secret.reveal()}"})
    # The header made once per secret and kept on it (never in a cache of its own: it goes
    # when the secret goes), not per request.
    header = secret._bearer
    if header is None:
        header = secret._bearer = {"authorization": f"Bearer {secret.reveal()}"}
    if type(http_request) is not HttpRequest:  # a subclass may have more fields
        return http_request.merge_headers(header)
    # `merge_headers()` inline (a call less per attempt): a copy filled in as its builder
    signed: Any = _new(_HttpRequestBuilder)
    signed.method = http_request.method
    signed.url = http_request.url
    signed.headers = {**http_request.headers, **header}
    signed.json = http_request.json
    signed.content = http_request.content
    signed.timeout = http_request.timeout
    signed.__class__ = HttpRequest
    return signed  # type: ignore[no-any-return]


@hookimpl(trylast=True)
def aipk_map_error(
    provider: Provider, status: int, headers: Mapping[str, str], data: Any,
    request_id: str | None,
) -> ProviderError | None:
    message = data if isinstance(data, str) and data else None
    return error_for_status(provider=provider.name, status=status, headers=headers, body=data,
                            message=message, request_id=request_id, now=time.time())
