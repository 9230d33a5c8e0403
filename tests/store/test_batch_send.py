"""Group commit in the core (`shared.app.batch_send.send_batch`), on PostgreSQL and on SQLite:
one transaction for many sends, each with `send_message`'s semantics, each failing alone."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy import func, select

from shared.app import conversations, messages, moderation
from shared.app.batch_send import SendRequest, send_batch
from shared.app.message_log import store_messages
from shared.app.messages import SendScope, Sent, prepare_send
from shared.app.services import Services
from shared.bootstrap import build_services
from shared.domain.errors import DomainError, Forbidden, Invalid, NotFound
from shared.domain.models import Actor, Event, NewMessage
from shared.ports.bus import PublishedEvent
from shared.storage.schema import event_targets, events, unpublished_events
from shared.storage.schema import messages as messages_table
from tests.support import client_random, make_settings, new_id


@pytest.fixture
def services(store_url: str, key_path: str) -> Iterator[Services]:
    svc = build_services(make_settings(store_url, key_path, messages_burst=100_000, messages_per_minute=10_000_000))
    yield svc
    svc.close()


def _text(content: str, random: int | None = None, **fields: object) -> NewMessage:
    return NewMessage(
        content=content, message_type="text", client_random=client_random() if random is None else random, **fields
    )  # type: ignore[arg-type]


def _sent(outcome: Sent | Exception) -> Sent:
    assert isinstance(outcome, Sent), outcome
    return outcome


def _stored(svc: Services, conversation_id: str) -> list[tuple[int, str]]:
    with svc.db.transaction() as conn:
        rows = conn.execute(
            select(messages_table.c.seq, messages_table.c.content)
            .where(messages_table.c.conversation_id == conversation_id)
            .order_by(messages_table.c.seq)
        )
        return [(int(r.seq), r.content) for r in rows]


def test_sends_to_many_conversations_commit_together_in_arrival_order(services: Services) -> None:
    alice, bob, carol = Actor(new_id(), "a"), Actor(new_id(), "b"), Actor(new_id(), "c")
    ids = [
        conversations.create_direct(services, alice, bob.user_id).view["id"],
        conversations.create_direct(services, alice, carol.user_id).view["id"],
        conversations.create_group(services, bob, "Trio", [alice.user_id, carol.user_id], {}).view["id"],
    ]
    group_start = len(_stored(services, ids[2]))
    heard: list[PublishedEvent] = []
    services.bus.subscribe(heard.append)
    plan = [
        (alice, ids[2], "g1"),
        (bob, ids[0], "d1"),
        (carol, ids[1], "e1"),
        (carol, ids[2], "g2"),
        (alice, ids[0], "d2"),
        (bob, ids[2], "g3"),
    ]
    outcomes = send_batch(services, [SendRequest(a, c, _text(t)) for a, c, t in plan])

    sent = [_sent(o) for o in outcomes]
    assert all(s.created for s in sent)
    assert [s.message.content for s in sent] == [t for _, _, t in plan]  # one outcome per request, in order
    group_seq = {s.message.content: s.message.seq for s in sent if s.message.conversation_id == ids[2]}
    assert [group_seq[c] for c in ("g1", "g2", "g3")] == [group_start + k for k in (1, 2, 3)]  # arrival order
    assert _stored(services, ids[0]) == [(1, "d1"), (2, "d2")]
    assert _stored(services, ids[1]) == [(1, "e1")]
    published = [e for e in heard if e.name == "new_message"]
    assert sorted(e.payload["message"]["content"] for e in published) == sorted(t for _, _, t in plan)
    with services.db.transaction() as conn:
        txids = conn.execute(
            select(func.count(func.distinct(events.c.txid))).where(events.c.id.in_([e.position for e in published]))
        ).scalar_one()
        unpublished = conn.execute(select(func.count()).select_from(unpublished_events)).scalar_one()
    assert txids == 1  # one transaction for the six sends
    assert unpublished == 0  # published after the commit, and marked


def test_a_bad_send_fails_alone_and_takes_no_seq(services: Services) -> None:
    owner, bob, stranger = Actor(new_id(), "o"), Actor(new_id(), "b"), Actor(new_id(), "s")
    group = conversations.create_group(services, owner, "Room", [bob.user_id], {}).view["id"]
    other = conversations.create_direct(services, owner, stranger.user_id).view["id"]
    e2ee = conversations.create_group(services, owner, "Secret", [bob.user_id], {"e2ee": {"enabled": True}}).view["id"]
    elsewhere = messages.send_message(services, owner, other, _text("elsewhere")).message
    moderation.create_sanction(services, owner, e2ee, user_id=bob.user_id, kind="mute", duration_seconds=600)
    before = {cid: len(_stored(services, cid)) for cid in (group, e2ee)}
    heard: list[PublishedEvent] = []
    services.bus.subscribe(heard.append)

    requests = [
        SendRequest(owner, group, _text("first")),
        SendRequest(stranger, group, _text("not a member")),  # 403 not_a_member
        SendRequest(bob, group, _text("bad reply", reply_to_id=elsewhere.id)),  # 422 reply_to_id
        SendRequest(owner, e2ee, _text("bad tokens", metadata={"search_tokens": [""]})),  # 422 after its insert
        SendRequest(bob, e2ee, _text("muted")),  # 403 sanctioned
        SendRequest(owner, new_id(), _text("nowhere")),  # 404
        SendRequest(owner, group, _text("x" * (64 * 1024 + 1))),  # too large: refused before the transaction
        SendRequest(bob, group, _text("second")),
        SendRequest(owner, e2ee, _text("fine", metadata={"search_tokens": ["t1"]})),
    ]
    outcomes = send_batch(services, requests)

    assert isinstance(outcomes[1], Forbidden) and outcomes[1].code == "not_a_member"
    assert isinstance(outcomes[2], Invalid) and "reply_to_id" in outcomes[2].details
    assert isinstance(outcomes[3], Invalid) and outcomes[3].code == "invalid_search_tokens"
    assert isinstance(outcomes[4], Forbidden) and outcomes[4].code == "sanctioned"
    assert isinstance(outcomes[5], NotFound) and outcomes[5].code == "conversation_not_found"
    assert isinstance(outcomes[6], DomainError) and outcomes[6].status == 413
    good = [_sent(outcomes[i]).message for i in (0, 7, 8)]
    assert [(m.content, m.seq) for m in good] == [
        ("first", before[group] + 1),
        ("second", before[group] + 2),
        ("fine", before[e2ee] + 1),
    ]
    assert [c for _, c in _stored(services, group)][-2:] == ["first", "second"]
    seqs = [s for s, _ in _stored(services, e2ee)]
    assert seqs == list(range(1, len(seqs) + 1))  # the failed insert gave its seq back
    assert "bad tokens" not in [c for _, c in _stored(services, e2ee)]
    assert sorted(e.payload["message"]["content"] for e in heard if e.name == "new_message") == [
        "fine",
        "first",
        "second",
    ]


def test_duplicates_in_one_batch_or_already_stored_return_the_original(services: Services) -> None:
    alice, bob = Actor(new_id(), "phone"), Actor(new_id(), "b")
    cid = conversations.create_direct(services, alice, bob.user_id).view["id"]
    stored = messages.send_message(services, alice, cid, _text("stored", 7)).message
    heard: list[PublishedEvent] = []
    services.bus.subscribe(heard.append)

    laptop = Actor(alice.user_id, "laptop")  # client_random is per sender, whatever the device
    outcomes = send_batch(
        services,
        [
            SendRequest(alice, cid, _text("new", 8)),
            SendRequest(laptop, cid, _text("new again", 8)),
            SendRequest(alice, cid, _text("stored again", 7)),
            SendRequest(bob, cid, _text("bob's own", 8)),
        ],
    )

    first, again, old, bobs = (_sent(o) for o in outcomes)
    assert first.created and first.message.seq == 2
    assert not again.created and again.message.id == first.message.id and again.message.content == "new"
    assert not old.created and old.message.id == stored.id
    assert bobs.created and bobs.message.seq == 3
    assert [e.payload["message"]["id"] for e in heard if e.name == "new_message"] == [
        first.message.id,
        bobs.message.id,
    ]  # no second event for a duplicate
    assert _stored(services, cid) == [(1, "stored"), (2, "new"), (3, "bob's own")]


def test_a_batch_of_one_behaves_like_send_message(services: Services) -> None:
    alice, bob = Actor(new_id()), Actor(new_id())
    cid = conversations.create_direct(services, alice, bob.user_id).view["id"]
    [sent] = send_batch(services, [SendRequest(alice, cid, _text("one", 5))])
    [again] = send_batch(services, [SendRequest(alice, cid, _text("one", 5))])
    [refused] = send_batch(services, [SendRequest(Actor(new_id()), cid, _text("intruder"))])
    assert _sent(sent).created and not _sent(again).created and _sent(again).message.id == _sent(sent).message.id
    assert isinstance(refused, Forbidden)
    assert send_batch(services, []) == []


def test_concurrent_batches_over_overlapping_conversations_neither_deadlock_nor_leave_gaps(
    services: Services,
) -> None:
    users = [Actor(new_id(), "d") for _ in range(4)]
    ids = [
        conversations.create_group(services, users[0], f"G{i}", [u.user_id for u in users[1:]], {}).view["id"]
        for i in range(4)
    ]
    start = {cid: len(_stored(services, cid)) for cid in ids}

    def batch(n: int) -> list[Sent | Exception]:
        order = ids if n % 2 else list(reversed(ids))  # opposite arrival orders
        return send_batch(
            services, [SendRequest(users[(n + k) % 4], cid, _text(f"{n}-{k}")) for k, cid in enumerate(order * 2)]
        )

    with concurrent.futures.ThreadPoolExecutor(max_workers=6) as pool:
        results = [o for outcomes in pool.map(batch, range(24)) for o in outcomes]
    assert all(isinstance(o, Sent) and o.created for o in results), [o for o in results if not isinstance(o, Sent)]
    for cid in ids:
        seqs = [s for s, _ in _stored(services, cid)]
        assert seqs == list(range(1, start[cid] + 24 * 2 + 1))


def test_deferred_events_are_written_like_recorded_ones(services: Services) -> None:
    """`Unit.defer_events`: the same outbox rows (targets included), in record order, and a
    savepoint rolled back takes its deferred events with it."""
    users = [new_id() for _ in range(3)]
    recorded = [Event("draft_updated", {"n": n}, (f"user:{users[n]}", f"user:{users[(n + 1) % 3]}")) for n in range(3)]
    with services.unit() as unit:
        unit.defer_events()
        unit.record(recorded[0])
        with pytest.raises(RuntimeError), unit.savepoint():
            unit.record(Event("draft_updated", {"n": "undone"}, (f"user:{users[0]}",)))
            raise RuntimeError("undo")
        unit.record(recorded[1])
        unit.record(recorded[2])
    assert [e.payload for e in unit.events] == [{"n": 0}, {"n": 1}, {"n": 2}]
    positions = [e.position for e in unit.events]
    assert positions == sorted(positions)
    with services.db.transaction() as conn:
        rows = conn.execute(
            select(events.c.id, events.c.payload).where(events.c.id.in_(positions)).order_by(events.c.id)
        ).all()
        targets = conn.execute(
            select(event_targets.c.event_id, event_targets.c.user_id).where(event_targets.c.event_id.in_(positions))
        ).all()
    assert [(r.id, r.payload) for r in rows] == [(p, {"n": n}) for n, p in enumerate(positions)]
    assert sorted((t.event_id, t.user_id) for t in targets) == sorted(
        (positions[n], u) for n in range(3) for u in (users[n], users[(n + 1) % 3])
    )


def test_events_deferred_before_a_savepoint_that_wrote_them_are_deferred_again(services: Services) -> None:
    """A savepoint that writes the deferred events (a send storing in its own savepoint, on the
    batch's fallback path) and is then rolled back defers them again: they are written once,
    at the end, not lost with the savepoint."""
    user = new_id()
    with services.unit() as unit:
        unit.defer_events()
        unit.record(Event("draft_updated", {"n": "before"}, (f"user:{user}",)))
        with pytest.raises(RuntimeError), unit.savepoint():
            unit.write_events([Event("draft_updated", {"n": "inside"}, (f"user:{user}",))])()
            raise RuntimeError("undo")
    assert [e.payload for e in unit.events] == [{"n": "before"}]
    with services.db.transaction() as conn:
        stored = conn.execute(select(events.c.payload).where(events.c.id.in_([e.position for e in unit.events]))).all()
    assert [r.payload for r in stored] == [{"n": "before"}]


def test_a_batch_on_psycopg_sends_its_statements_in_two_pipelines(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On psycopg the group commit's statements travel in two pipelines (one round trip each):
    the locks and every read the checks need, then the `seq`s, messages and events; then the
    commit. No statement runs alone (no ping of a connection used a moment ago either),
    whatever the batch's size and number of conversations."""
    if services.db.engine.dialect.driver != "psycopg":
        pytest.skip("psycopg only")
    users = [Actor(new_id(), "d") for _ in range(3)]
    ids = [conversations.create_direct(services, users[0], u.user_id).view["id"] for u in users[1:]]
    ids.append(conversations.create_group(services, users[0], "G", [u.user_id for u in users[1:]], {}).view["id"])
    send_batch(services, [SendRequest(users[0], cid, _text("warm")) for cid in ids])  # a pooled connection
    alone: list[str] = []
    pipelines = 0
    execute, pipeline = psycopg.Cursor.execute, psycopg.Connection.pipeline

    def counted_execute(self: psycopg.Cursor[object], query: object, *args: object, **kwargs: object) -> object:
        if self.connection._pipeline is None:
            alone.append(str(query))
        return execute(self, query, *args, **kwargs)  # type: ignore[arg-type]

    def counted_pipeline(self: psycopg.Connection[object]) -> object:
        nonlocal pipelines
        pipelines += 1
        return pipeline(self)

    monkeypatch.setattr(psycopg.Cursor, "execute", counted_execute)
    monkeypatch.setattr(psycopg.Connection, "pipeline", counted_pipeline)
    outcomes = send_batch(services, [SendRequest(users[0], ids[k % 3], _text(f"m{k}")) for k in range(12)])
    monkeypatch.undo()
    assert all(isinstance(o, Sent) and o.created for o in outcomes), outcomes
    assert (pipelines, alone) == (2, [])


def test_seqs_are_checked_against_the_locked_rows(services: Services) -> None:
    """`store_messages(locked=True)` counts the `seq`s from the locked rows' `last_seq` and
    checks the UPDATE's answer before the transaction can commit: a row that is not what the
    lock read fails the store (nothing stored) instead of giving a `seq` twice or a gap."""
    if services.db.engine.dialect.driver != "psycopg":
        pytest.skip("psycopg only: elsewhere the seqs are read back from the UPDATE")
    alice, bob = Actor(new_id(), "a"), Actor(new_id(), "b")
    cid = conversations.create_direct(services, alice, bob.user_id).view["id"]
    messages.send_message(services, alice, cid, _text("first"))
    with pytest.raises(RuntimeError, match="seq taken"), services.unit() as unit:
        scope = SendScope(unit, services.settings.limits)
        new = _text("second")
        scope.prefetch([(cid, alice.user_id, new)])
        prepared = prepare_send(services, scope, alice, cid, new)
        assert not isinstance(prepared, Sent)
        prepared.conv.last_seq += 5  # as if the lock had read another row: without the check, a gap
        store_messages(unit, [(prepared.conv, prepared.message, prepared.member_ids)], locked=True)
    assert _stored(services, cid) == [(1, "first")]


def test_a_send_whose_row_fails_to_store_fails_alone_and_the_connection_goes_on(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A constraint the checks cannot see (here: a message id that exists) fails the batch's
    write (on psycopg, inside its pipeline); the batch runs again with each send in its own
    savepoint, the other sends commit, and the same pooled connections keep serving batches
    (psycopg's prepared statements survive the failed pipeline)."""
    alice = Actor(new_id(), "a")
    ids = [conversations.create_direct(services, alice, new_id()).view["id"] for _ in range(3)]
    taken = messages.send_message(services, alice, ids[0], _text("taken")).message.id
    drawn = iter([new_id(), taken, new_id(), new_id(), taken, new_id()])  # twice: the attempt, then its savepoint
    monkeypatch.setattr("shared.app.messages.new_uuid", lambda: next(drawn))
    outcomes = send_batch(services, [SendRequest(alice, cid, _text(f"m{k}")) for k, cid in enumerate(ids)])
    monkeypatch.undo()
    failed = [k for k, o in enumerate(outcomes) if not isinstance(o, Sent)]
    assert len(failed) == 1 and isinstance(outcomes[failed[0]], sa_exc.IntegrityError), outcomes
    lost = ids[failed[0]]
    assert _stored(services, lost) == ([(1, "taken")] if lost == ids[0] else [])
    for round_ in range(8):  # the connections that saw the failure, again and again
        again = send_batch(services, [SendRequest(alice, cid, _text(f"r{round_}")) for cid in ids])
        assert all(isinstance(o, Sent) and o.created for o in again), again
    for cid in ids:
        seqs = [seq for seq, _ in _stored(services, cid)]
        assert seqs == list(range(1, len(seqs) + 1))  # the failed send gave its seq back
