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
    described = redact(f"{type(failure).__name__}: {failure}")
    source_name = type(source).__name__
    log.warning("the credential source %s could not record %s of credential %r (%s); the "
                "call goes on with its own outcome: fix or restore the source (its state "
                "store)", source_name, what, credential_id, described,
                extra={"aipk_credential_id": credential_id,
                       "aipk_error_type": type(failure).__name__})
    if outcome is not None:
        _note(outcome, f"the credential source {source_name} could not record {what} of "
                       f"credential {credential_id!r}: {described}")


def _note(outcome: BaseException, note: str) -> None:
    add_note = getattr(outcome, "add_note", None)
    if add_note is not None:  # Python 3.11+
        add_note(note)
    else:  # 3.10: the same attribute, which 3.11's traceback would print
        notes = getattr(outcome, "__notes__", None)
        outcome.__notes__ = [*(notes or ()), note]  # type: ignore[attr-defined]


def choosing_failed(failure: Exception, source: object, outcome: BaseException,
                    what: str = "choosing a credential for another attempt") -> None:
    """``source`` raised ``failure`` while ``what`` (choosing the credential for another
    attempt, refreshing one after a 401) after the call's last attempt failed with
    ``outcome``: log it and attach it to ``outcome`` as a note. The call goes on with its own
    error, not the source's."""
    described = redact(f"{type(failure).__name__}: {failure}")
    source_name = type(source).__name__
    log.warning("the credential source %s failed %s (%s); the call goes on with its own "
                "error: fix or restore the source (its state store, its token endpoint)",
                source_name, what, described,
                extra={"aipk_error_type": type(failure).__name__})
    _note(outcome, f"the credential source {source_name} failed {what}: {described}")
