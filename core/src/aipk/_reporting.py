"""What a call does when its credential source raises while recording the call's outcome
(``report_success``, ``report_failure``, ``add_tokens``; a shared state store that is down,
a user's own source with a bug): the call's own outcome stands. A failed call raises its own
error with the source's failure attached as a note (``__notes__``: shown under the error's
traceback on Python 3.11+, readable on 3.10 too); an answered call returns its answer; in
both cases the source's failure is logged at WARNING (logger ``aipk.credentials``), its
message with every held secret masked.
"""

from __future__ import annotations

import logging

from ._secrets import redact

__all__ = ["choosing_failed", "reporting_failed"]

log = logging.getLogger("aipk.credentials")


def reporting_failed(failure: Exception, source: object, what: str, credential_id: str,
                     outcome: BaseException | None = None) -> None:
    """``source`` raised ``failure`` while recording ``what`` (e.g. ``"the failure"``) of
    ``credential_id``: log it and, for a call that failed with ``outcome``, attach it there
    as a note. The caller then goes on with the call's own outcome."""
    _source_failed(failure, source, f"could not record {what} of credential {credential_id!r}",
                   outcome, {"aipk_credential_id": credential_id})


def choosing_failed(failure: Exception, source: object, outcome: BaseException,
                    what: str = "choosing a credential for another attempt") -> None:
    """``source`` raised ``failure`` while ``what`` (choosing the credential for another
    attempt, refreshing one after a 401) after the call's last attempt failed with
    ``outcome``: log it and attach it to ``outcome`` as a note. The call goes on with its own
    error, not the source's."""
    _source_failed(failure, source, f"failed {what}", outcome, {})


def _source_failed(failure: Exception, source: object, doing: str,
                   outcome: BaseException | None, extra: dict[str, str]) -> None:
    """Log that ``source`` ``doing`` (raised ``failure``), keys masked, and note it on
    ``outcome`` when there is one."""
    described = redact(f"{type(failure).__name__}: {failure}")
    source_name = type(source).__name__
    log.warning("the credential source %s %s (%s); the call goes on with its own outcome: "
                "fix or restore the source (its state store, its token endpoint)",
                source_name, doing, described,
                extra={**extra, "aipk_error_type": type(failure).__name__})
    if outcome is None:
        return
    note = f"the credential source {source_name} {doing}: {described}"
    add_note = getattr(outcome, "add_note", None)
    if add_note is not None:  # Python 3.11+
        add_note(note)
    else:  # 3.10: the same attribute, which 3.11's traceback would print
        notes = getattr(outcome, "__notes__", None)
        outcome.__notes__ = [*(notes or ()), note]  # type: ignore[attr-defined]
