"""The WebSocket relay: the Phoenix Channels protocol over the shared core (realtime.md).

Modules, from the wire inwards:

- `protocol`: serializer v2 arrays and v1 objects, decoding with validation, encoding. Pure.
- `server`: the upgrade (token from the `token` query or phoenix.js 1.8's auth subprotocol,
  `user_id` must match, per-IP socket count), the routes the gateway mounts, the standalone app.
- `socket`: one connection: frame size limit, per-connection push budget, heartbeats, idle
  timeout, routing to channels, and the bounded send queue (a slow consumer is closed).
- `channels`: one joined topic: join authorisation and catch-up, client pushes, hub delivery.
- `calls`: the synchronous calls into the use cases, run in worker threads.
- `batching`: group commit: `new_message` pushes of every channel, collected for a millisecond
  or two, sent in one transaction (`shared.app.batch_send`), each answered after the commit.
- `hub`: topic -> channels, fed by the event bus; each event's payload is encoded once.
- `sequencer`: message events per conversation in `seq` order, once; gaps filled from the store.
- `presence`, `typing_indicators`: in-process presence (the state store port's embedded adapter,
  Phoenix Presence shape) and typing.

Decisions worth knowing:

- Catch-up without gap or duplicate: a join subscribes to the hub *before* it reads the store,
  holds live events until the reply and the replay are written, and drops live `new_message`
  events whose `seq` is at or below the conversation's `last_seq` read in the join's
  transaction (the replay or the client's REST catch-up has those).
- Message events on a conversation topic go only to the users the core addressed (the `user:`
  topics of the event, plus the sender): a message committed just after a removal cannot reach
  the removed member's socket even if it is dispatched before the `member_removed` event.
- Typing travels through the bus (never stored, not in the outbox) so every relay instance hears
  it. Presence lives in the state store port (in-process, or Firestore shared by every instance):
  `presence_state` is read from it on join, and its diffs travel through the bus too, once the
  store has them (this instance's sockets get them at once, the bus's copy is a duplicate here).
- The bus is at-least-once and ordered only per publisher: the hub releases `new_message` events
  per conversation in `seq` order, drops the ones it released already, and reads from the store
  a message whose event does not come (`sequencer`).
- Group commit keeps each send's own semantics and its own reply: a bad send in a batch fails
  alone; a channel's queued `new_message` pushes go in one batch, so their `seq` follow push order.
- Failures of a push that are domain errors are error replies with the REST API's codes; an
  unexpected failure ends the channel with `phx_error`, as a crashed Phoenix channel does.
"""
