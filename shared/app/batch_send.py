"""Group commit: many sends (from any senders, to any conversations) in one transaction.

The relay collects concurrent socket `new_message` pushes for a millisecond or two and hands
them here together (shared/relay/batching.py). Each send has exactly `send_message`'s semantics
(it runs the same `check_sendable`, rate limit and `send_in_unit`); what is shared is the
transaction, so the commit (and its WAL flush), the outbox publication and its bookkeeping are
paid once per batch instead of once per message:

- A send that is refused (not a member, sanctioned, key mismatch, bad reply_to_id...) fails
  alone, with its own error; the others commit. Every send is checked before anything of the
  batch is written (`prepare_send` writes nothing), then the accepted ones are stored together,
  set-based (`store_messages`: one UPDATE for the `seq`s, one INSERT for the messages, at most
  two for the search index), so a batch costs a fixed handful of statements whatever its size.
  If storing fails anyway (a constraint the checks missed), the attempt is rolled back and the
  batch runs again with each send in its own SAVEPOINT.
- Every conversation of the batch is locked up front, in id order (one query), so concurrent
  batches (other relay instances) and single sends cannot deadlock with each other.
- Sends to one conversation take their `seq` in the order given (arrival order): sorting by
  conversation is stable.
- A duplicate `client_random` (already stored, or earlier in the same batch) returns the
  original and records nothing. What the checks need (stored candidates, sanctions, replied-to
  messages) is read in one query each once the conversations are locked (`SendScope.prefetch`);
  the batch's own sends are remembered as they are accepted.
- The batch's events are written to the outbox together at the end (`Unit.defer_events`).
- Nobody is answered before the commit: the outcomes are returned once it has happened, and
  the events are published after it, as `Services.unit` does for every use case.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from shared.app.message_log import store_messages
from shared.app.messages import (
    Prepared,
    SendScope,
    Sent,
    after_send,
    check_sendable,
    prepare_send,
    send_in_unit,
    take_send_token,
)
from shared.app.services import Services
from shared.domain.errors import DomainError, StoreUnavailable
from shared.domain.models import Actor, NewMessage

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SendRequest:
    actor: Actor
    conversation_id: str
    new: NewMessage


Outcome = Sent | Exception  # a DomainError is the send's answer; anything else is a failure of ours


def send_batch(svc: Services, requests: Sequence[SendRequest]) -> list[Outcome]:
    """Send every request in one transaction; one outcome per request, in the same order."""
    outcomes: list[Outcome | None] = [None] * len(requests)
    for i, request in enumerate(requests):  # no database needed: before the transaction
        try:
            check_sendable(svc, request.conversation_id, request.new)
            take_send_token(svc, request.actor)
        except DomainError as error:
            outcomes[i] = error
    todo = sorted((i for i, o in enumerate(outcomes) if o is None), key=lambda i: requests[i].conversation_id)
    if todo:
        _run(svc, requests, todo, outcomes)
    done = [o if o is not None else RuntimeError("send not processed") for o in outcomes]
    for outcome in done:
        if isinstance(outcome, Sent):
            after_send(svc, outcome)
    return done


class _Abort(Exception):
    """A send failed in an attempt without savepoints: the whole attempt is rolled back."""


def _run(svc: Services, requests: Sequence[SendRequest], todo: list[int], outcomes: list[Outcome | None]) -> None:
    try:
        try:  # optimistic: most batches have no failing send, and savepoints cost two round trips each
            results = _attempt(svc, requests, todo, isolate=False)
        except _Abort as abort:
            if len(todo) == 1:  # it failed alone anyway
                assert isinstance(abort.__cause__, Exception)
                results = {todo[0]: abort.__cause__}
            else:  # rolled back: again, each send in its own savepoint
                results = _attempt(svc, requests, todo, isolate=True)
    except StoreUnavailable as error:  # nothing committed; the senders are told to retry
        log.warning("a batch of %d sends failed: %s", len(todo), error.__cause__ or error)
        results = dict.fromkeys(todo, error)
    except Exception as error:  # nothing committed: every send of the batch fails
        log.exception("a batch of %d sends failed", len(todo))
        results = dict.fromkeys(todo, error)
    for i, outcome in results.items():
        outcomes[i] = outcome


def _attempt(svc: Services, requests: Sequence[SendRequest], todo: list[int], *, isolate: bool) -> dict[int, Outcome]:
    """One transaction for the sends `todo` (sorted by conversation). Without `isolate`, every
    send is checked (`prepare_send`; a refused send fails alone, having written nothing), then
    the accepted ones are stored together (`store_messages`: a fixed handful of statements
    whatever the batch's size); a failure there aborts the attempt (`_Abort`). With `isolate`,
    each send runs alone in its own savepoint."""
    results: dict[int, Outcome] = {}
    with svc.unit() as unit:
        unit.defer_events()  # the batch's events in two INSERTs at the end, not one per send
        scope = SendScope(unit, svc.settings.limits)
        scope.prefetch((requests[i].conversation_id, requests[i].actor.user_id, requests[i].new) for i in todo)
        if isolate:
            for i in todo:
                results[i] = _isolated(svc, scope, requests[i])
            return results
        accepted: list[tuple[int, Prepared]] = []
        for i in todo:
            request = requests[i]
            try:
                prepared = prepare_send(svc, scope, request.actor, request.conversation_id, request.new)
            except DomainError as error:
                results[i] = error
                continue
            except Exception as error:
                raise _Abort from error
            if isinstance(prepared, Sent):
                results[i] = prepared
            else:
                scope.sent(prepared.message)  # a later send of the batch with its client_random duplicates it
                accepted.append((i, prepared))
        try:
            store_messages(unit, [(p.conv, p.message, p.member_ids) for _, p in accepted], locked=True)
        except Exception as error:
            raise _Abort from error
        for i, prepared in accepted:
            results[i] = Sent(prepared.message, created=True)
    return results


def _isolated(svc: Services, scope: SendScope, request: SendRequest) -> Outcome:
    try:
        with scope.unit.savepoint():
            return send_in_unit(svc, scope, request.actor, request.conversation_id, request.new)
    except DomainError as error:
        return error
    except Exception as error:  # e.g. a constraint the checks missed: this send fails alone
        log.exception("a send of a batch failed; the others go on")
        return error
