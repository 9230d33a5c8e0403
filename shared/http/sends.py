"""How the REST send handler stores a message: a port chosen where the app is assembled.

A Cloud Function instance serves one request at a time: its send is `send_message`, in a
transaction of its own (`DirectSends`). A long-running process that already runs the relay's
group commit (the local gateway: `whispr-messaging dev`) hands its REST sends to that batcher
(`BatchedSends`), so concurrent sends, REST and socket alike, share one transaction and one
commit. `shared.app.batch_send.send_batch` gives each send exactly `send_message`'s answer
(the same checks, rate limit, duplicate `client_random`, events), so the replies are the same.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import anyio.from_thread
import anyio.to_thread

from shared.app import messages as uc
from shared.app.batch_send import SendRequest
from shared.app.messages import Sent
from shared.app.services import Services
from shared.domain.models import Actor, NewMessage
from shared.telemetry import tracing

if TYPE_CHECKING:
    from shared.relay.batching import SendBatcher


class SendPort(Protocol):
    """How the send route stores a message. Called from the request's worker thread."""

    def send_message(self, actor: Actor, conversation_id: str, new: NewMessage) -> Sent:
        """Store one message and return it (or the original of a duplicate `client_random`);
        a refusal raises its DomainError, as `shared.app.messages.send_message` does."""
        ...

    async def send_message_async(self, actor: Actor, conversation_id: str, new: NewMessage) -> Sent:
        """The same, awaited on the event loop."""
        ...


class DirectSends:
    """One transaction per send (the functions)."""

    def __init__(self, services: Services):
        self.services = services

    def send_message(self, actor: Actor, conversation_id: str, new: NewMessage) -> Sent:
        return uc.send_message(self.services, actor, conversation_id, new)

    async def send_message_async(self, actor: Actor, conversation_id: str, new: NewMessage) -> Sent:
        return await anyio.to_thread.run_sync(self.send_message, actor, conversation_id, new)


class BatchedSends:
    """Each send joins `batcher`'s next batch and is answered once it has committed: awaited on
    the event loop the batcher runs on, or from a worker thread anyio started on it."""

    def __init__(self, batcher: SendBatcher):
        self.batcher = batcher

    def send_message(self, actor: Actor, conversation_id: str, new: NewMessage) -> Sent:
        sent = anyio.from_thread.run(
            self._submit, SendRequest(actor, conversation_id, new), tracing.current_traceparent()
        )
        uc.log_sent(sent)  # here, in the request's context (its request id), not the batch's
        return sent

    async def send_message_async(self, actor: Actor, conversation_id: str, new: NewMessage) -> Sent:
        sent = await self._submit(SendRequest(actor, conversation_id, new), tracing.current_traceparent())
        uc.log_sent(sent)
        return sent

    async def _submit(self, request: SendRequest, trace: str | None) -> Sent:
        (outcome,) = await self.batcher.submit([request], trace)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome
