"""Reports, the moderators' queue and conversation sanctions (rules.md: Abuse)."""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from shared.app.services import utcnow
from shared.config import load_settings
from shared.domain.moderation import CATEGORIES, is_global_moderator
from shared.storage.schema import events, reports, sanctions
from shared.storage.schema import members as conversation_members
from tests.support import (
    RunningServer,
    UserClient,
    assert_error,
    client_random,
    fresh_database,
    make_settings,
    moderator_client,
    new_id,
    serve,
)


def report(client: UserClient, **body: Any) -> dict[str, Any]:
    response = client.post("/reports", {"category": "spam", **body})
    assert response.status_code == 201, response.text
    return dict(response.json()["data"])


def send_status(client: UserClient, cid: str) -> int:
    body = {"content": "hi", "client_random": client_random()}
    return client.post(f"/conversations/{cid}/messages", body).status_code


def outbox(server: RunningServer, name: str) -> list[dict[str, Any]]:
    with server.services.db.transaction() as conn:
        rows = conn.execute(select(events.c.topics, events.c.payload).where(events.c.name == name))
        return [dict(r._mapping) for r in rows]


# reports


def test_report_a_message_with_a_24_hour_cooldown(server: RunningServer, time_travel: list[timedelta]) -> None:
    alice, bob = server.client(), server.client()
    cid = alice.direct_with(bob)["id"]
    message = alice.send(cid, "buy cheap watches")
    created = report(bob, message_id=message["id"], category="spam", reason="  advertising  ")
    assert created["reporter_id"] == bob.user_id and created["message_id"] == message["id"]
    assert created["reported_user_id"] == alice.user_id and created["conversation_id"] == cid
    assert (created["category"], created["reason"], created["status"]) == ("spam", "advertising", "pending")
    assert created["resolution"] is None and "note" not in created and "evidence" not in created

    again = assert_error(
        bob.post("/reports", {"message_id": message["id"], "category": "harassment"}), 409, "already_reported"
    )
    assert again["details"]["report_id"] == created["id"] and again["details"]["retry_after"] > 86000
    time_travel.append(timedelta(hours=23, minutes=59, seconds=59))
    late = assert_error(bob.post("/reports", {"message_id": message["id"], "category": "spam"}), 409)
    assert late["details"]["retry_after"] <= 2
    another = alice.send(cid, "and another one")  # the cooldown is per message
    report(bob, message_id=another["id"])
    time_travel.append(timedelta(hours=24, seconds=1))
    second = report(bob, message_id=message["id"], category="harassment")
    assert second["id"] != created["id"]
    with server.services.db.transaction() as conn:
        stored = conn.execute(select(reports.c.id, reports.c.evidence).where(reports.c.message_id == message["id"]))
        rows = {r.id: r.evidence for r in stored}
    assert set(rows) == {created["id"], second["id"]}
    assert rows[created["id"]]["content"] == "buy cheap watches"  # the message as it was reported
    created_events = [e for e in outbox(server, "moderation.report_created") if e["payload"]["report"]["id"] in rows]
    assert len(created_events) == 2 and all(e["topics"] == [] for e in created_events)


def test_report_validation_and_visibility(server: RunningServer) -> None:
    alice, bob, eve = server.client(), server.client(), server.client()
    cid = alice.group_with(bob)["id"]
    message = alice.send(cid, "hello")
    body = assert_error(bob.post("/reports", {"message_id": message["id"], "category": "rude"}), 422)
    assert "category" in body["details"]
    assert_error(bob.post("/reports", {"message_id": message["id"]}), 422)  # no category
    assert_error(bob.post("/reports", {"category": "spam"}), 422)  # nothing to report
    assert_error(bob.post("/reports", {"message_id": "nope", "category": "spam"}), 422)
    assert_error(bob.post("/reports", {"message_id": message["id"], "category": "spam", "reason": "x" * 1001}), 422)
    assert_error(eve.post("/reports", {"message_id": message["id"], "category": "spam"}), 404, "message_not_found")
    assert_error(alice.post("/reports", {"message_id": message["id"], "category": "spam"}), 422, "cannot_report_self")
    assert_error(bob.post("/reports", {"message_id": message["id"], "user_id": eve.user_id, "category": "spam"}), 422)
    hidden = alice.send(cid, "hidden")
    assert bob.delete(f"/messages/{hidden['id']}").status_code == 200
    assert_error(bob.post("/reports", {"message_id": hidden["id"], "category": "spam"}), 404)
    # a user, in a conversation or not; each category is accepted (rules.md's and the client's)
    for category in CATEGORIES:
        made = report(bob, user_id=new_id(), category=category)
        assert made["category"] == category and made["message_id"] is None
    in_conv = report(eve, user_id=alice.user_id, category="harassment")
    assert in_conv["conversation_id"] is None
    assert_error(eve.post("/reports", {"user_id": alice.user_id, "conversation_id": cid, "category": "spam"}), 403)
    assert_error(bob.post("/reports", {"user_id": bob.user_id, "category": "spam"}), 422, "cannot_report_self")
    assert_error(eve.post("/reports", {"user_id": alice.user_id, "category": "spam"}), 409, "already_reported")


def test_twenty_reports_a_day(pg_url: str, key_path: str) -> None:
    """With the default report limit (the shared server lifts it)."""
    settings = make_settings(pg_url, key_path, reports_per_day=20, messages_burst=1000, messages_per_minute=100_000)
    with serve(settings) as server:
        alice, bob = server.client(), server.client()
        cid = alice.direct_with(bob)["id"]
        sent = [alice.send(cid, f"m{i}") for i in range(21)]
        for message in sent[:20]:
            report(bob, message_id=message["id"])
        limited = bob.post("/reports", {"message_id": sent[20]["id"], "category": "spam"})
        assert_error(limited, 429, "rate_limited")
        assert 86000 < int(limited.headers["Retry-After"]) <= 86400
        assert report(alice, user_id=bob.user_id)["status"] == "pending"  # per reporter
        server.services.clock = lambda: utcnow() + timedelta(hours=24, seconds=1)
        report(bob, message_id=sent[20]["id"])


def test_own_reports_and_who_sees_a_report(server: RunningServer) -> None:
    alice, bob, eve = server.client(), server.client(), server.client()
    cid = alice.direct_with(bob)["id"]
    first = report(bob, message_id=alice.send(cid, "one")["id"])
    second = report(bob, message_id=alice.send(cid, "two")["id"])
    mine = bob.get("/reports").json()
    assert [r["id"] for r in mine["data"]] == [second["id"], first["id"]] and mine["meta"]["has_more"] is False
    paged = bob.get("/reports", params={"limit": 1}).json()
    assert [r["id"] for r in paged["data"]] == [second["id"]] and paged["meta"]["has_more"] is True
    assert bob.get(f"/reports/{first['id']}").json()["data"]["id"] == first["id"]
    assert_error(eve.get(f"/reports/{first['id']}"), 404, "report_not_found")
    assert_error(alice.get(f"/reports/{first['id']}"), 404)  # the reported user neither
    assert moderator_client(server).get(f"/reports/{first['id']}").json()["data"]["evidence"]["content"] == "one"
    assert eve.get("/reports").json()["data"] == []


def test_only_moderators_see_the_queue_and_stats_and_resolve(server: RunningServer) -> None:
    alice, bob = server.client(), server.client()
    cid = alice.direct_with(bob)["id"]
    made = report(bob, message_id=alice.send(cid, "x")["id"])
    for client in (bob, alice, moderator_client(server, roles=["user"]), moderator_client(server, moderator=False)):
        assert_error(client.get("/reports/queue"), 403, "not_a_moderator")
        assert_error(client.get("/reports/stats"), 403, "not_a_moderator")
        assert_error(client.put(f"/reports/{made['id']}/resolve", {"resolution": "dismissed"}), 403, "not_a_moderator")
    for claims in ({"roles": ["moderator"]}, {"roles": "admin"}, {"role": "moderator"}, {"moderator": True}):
        assert moderator_client(server, **claims).get("/reports/stats").status_code == 200


def test_moderator_ids_come_from_the_token_or_the_configuration() -> None:
    uid = new_id()
    assert is_global_moderator(uid, {"roles": ["user", "Moderator"]}, frozenset())
    assert is_global_moderator(uid, {"roles": "user admin"}, frozenset())
    assert not is_global_moderator(uid, {"roles": ["user"], "moderator": "yes"}, frozenset())
    settings = load_settings({"WHISPR_MODERATOR_IDS": f" {uid.upper()} , {new_id()}"})
    assert is_global_moderator(uid, {}, settings.moderators)
    assert not is_global_moderator(new_id(), {}, settings.moderators)


def test_queue_stats_and_resolution(pg_url: str, key_path: str) -> None:
    url = fresh_database(pg_url, "whispr_moderation", key_path)
    with serve(make_settings(url, key_path)) as server:
        alice, bob, carol = server.client(), server.client(), server.client()
        mod = moderator_client(server)
        cid = alice.group_with(bob, carol)["id"]
        spam = report(bob, message_id=alice.send(cid, "spam here")["id"], category="spam")
        threat = report(carol, message_id=alice.send(cid, "a threat")["id"], category="violence")
        user = report(bob, user_id=carol.user_id, category="harassment")
        queue = mod.get("/reports/queue").json()
        assert [r["id"] for r in queue["data"]] == [spam["id"], threat["id"], user["id"]]  # oldest first
        assert queue["data"][0]["evidence"]["content"] == "spam here"
        page = mod.get("/reports/queue", params={"limit": 2, "offset": 1}).json()
        assert [r["id"] for r in page["data"]] == [threat["id"], user["id"]] and page["meta"]["has_more"] is False
        only = mod.get("/reports/queue", params={"category": "violence"}).json()["data"]
        assert [r["id"] for r in only] == [threat["id"]]
        assert_error(mod.get("/reports/queue", params={"category": "rude"}), 422)

        dismissed = mod.put(f"/reports/{user['id']}/resolve", {"resolution": "dismissed", "note": "banter"})
        assert dismissed.status_code == 200, dismissed.text
        view = dismissed.json()["data"]
        assert (view["status"], view["resolution"]["action"], view["action"], view["resolved_by"]) == (
            "resolved_dismissed",
            "dismiss",
            "none",
            mod.user_id,
        )
        assert_error(mod.put(f"/reports/{user['id']}/resolve", {"resolution": "dismissed"}), 409, "already_resolved")
        assert_error(mod.put(f"/reports/{spam['id']}/resolve", {"resolution": "maybe"}), 422)
        assert_error(mod.put(f"/reports/{spam['id']}/resolve", {"resolution": "dismissed", "action": "kick"}), 422)
        assert_error(mod.put(f"/reports/{spam['id']}/resolve", {"resolution": "action_taken", "action": "smite"}), 422)
        assert_error(mod.put(f"/reports/{spam['id']}/resolve", {"note": "no action"}), 422)
        assert_error(mod.put(f"/reports/{new_id()}/resolve", {"resolution": "dismissed"}), 404, "report_not_found")

        deleted = mod.put(f"/reports/{spam['id']}/resolve", {"resolution": "action_taken", "action": "delete_message"})
        assert deleted.status_code == 200 and deleted.json()["data"]["action"] == "delete_message"
        assert bob.get(f"/messages/{spam['message_id']}").json()["data"]["is_deleted"] is True
        muted = mod.put(
            f"/reports/{threat['id']}/resolve",
            {"resolution": "action_taken", "action": "mute", "duration_seconds": 3600},
        )
        assert muted.status_code == 200 and muted.json()["data"]["sanction_id"]
        assert_error(
            alice.post(f"/conversations/{cid}/messages", {"content": "x", "client_random": 1}), 403, "sanctioned"
        )

        stats = mod.get("/reports/stats").json()["data"]
        assert stats["total"] == 3
        assert stats["by_status"] == {"pending": 0, "under_review": 0, "resolved_action": 2, "resolved_dismissed": 1}
        assert stats["total_by_category"] == {**dict.fromkeys(CATEGORIES, 0), "spam": 1, "violence": 1, "harassment": 1}
        assert (stats["pending"], stats["under_review"], stats["by_category"]) == (0, 0, {})
        assert stats["by_resolution"] == {"action_taken": 2, "dismissed": 1}
        assert mod.get("/reports/queue").json()["data"] == []
        # the reporter sees the outcome, not the moderator's note or name
        seen = bob.get(f"/reports/{user['id']}").json()["data"]
        assert seen["status"] == "resolved_dismissed" and seen["resolution"]["action"] == "dismiss"
        assert (seen["resolution"]["notes"], seen["resolution"]["resolved_by"]) == (None, None)
        assert "note" not in seen and "resolved_by" not in seen


# sanctions


def test_a_sanction_blocks_sending_until_it_expires(server: RunningServer, time_travel: list[timedelta]) -> None:
    alice, bob, carol = server.client(), server.client(), server.client()
    cid = alice.group_with(bob, carol)["id"]
    response = alice.post(
        f"/conversations/{cid}/sanctions",
        {"user_id": bob.user_id, "kind": "mute", "duration_seconds": 3600, "reason": "calm down"},
    )
    assert response.status_code == 201, response.text
    sanction = response.json()["data"]
    assert (sanction["user_id"], sanction["kind"], sanction["is_active"]) == (bob.user_id, "mute", True)
    assert sanction["created_by"] == alice.user_id and sanction["revoked_at"] is None

    refused = assert_error(
        bob.post(f"/conversations/{cid}/messages", {"content": "x", "client_random": 1}), 403, "sanctioned"
    )
    assert refused["details"]["kind"] == "mute" and refused["details"]["expires_at"] == sanction["expires_at"]
    assert send_status(carol, cid) == 201  # only bob is muted, only here
    assert send_status(bob, bob.direct_with(carol)["id"]) == 201
    time_travel.append(timedelta(minutes=59, seconds=58))
    assert send_status(bob, cid) == 403
    time_travel.append(timedelta(hours=1, seconds=1))
    assert send_status(bob, cid) == 201
    listed = alice.get(f"/conversations/{cid}/sanctions").json()
    assert listed["data"] == []  # expired: no longer in force
    history = alice.get(f"/conversations/{cid}/sanctions", params={"include_inactive": "true"}).json()["data"]
    assert [s["id"] for s in history] == [sanction["id"]] and history[0]["is_active"] is False
    applied = [
        e for e in outbox(server, "moderation.sanction_applied") if e["payload"]["sanction"]["id"] == sanction["id"]
    ]
    assert len(applied) == 1 and applied[0]["topics"] == [f"user:{bob.user_id}"]


def test_restrict_blocks_sending_and_lifting_ends_it(server: RunningServer) -> None:
    alice, bob = server.client(), server.client()
    cid = alice.group_with(bob)["id"]
    sanction = alice.post(
        f"/conversations/{cid}/sanctions", {"user_id": bob.user_id, "kind": "restrict", "duration_seconds": 86400}
    ).json()["data"]
    assert send_status(bob, cid) == 403
    # restricted: no reactions, pins or attachments either
    mine = alice.send(cid, "react to me")
    assert_error(bob.post(f"/messages/{mine['id']}/reactions", {"reaction": "👍"}), 403, "sanctioned")
    assert_error(bob.post(f"/messages/{mine['id']}/pin"), 403, "sanctioned")
    assert alice.post(f"/messages/{mine['id']}/reactions", {"reaction": "👍"}).status_code == 201
    # bob sees his own sanction; he cannot lift it
    assert [s["id"] for s in bob.get(f"/conversations/{cid}/sanctions").json()["data"]] == [sanction["id"]]
    assert_error(bob.delete(f"/conversations/{cid}/sanctions/{sanction['id']}"), 403)
    lifted = alice.delete(f"/conversations/{cid}/sanctions/{sanction['id']}")
    assert lifted.status_code == 200 and lifted.json()["data"]["revoked_at"] is not None
    assert lifted.json()["data"]["is_active"] is False
    assert alice.delete(f"/conversations/{cid}/sanctions/{sanction['id']}").status_code == 200  # idempotent
    assert send_status(bob, cid) == 201
    assert_error(alice.delete(f"/conversations/{cid}/sanctions/{new_id()}"), 404, "sanction_not_found")


def test_kick_removes_the_member_who_cannot_be_added_back_until_it_ends(
    server: RunningServer, time_travel: list[timedelta]
) -> None:
    alice, bob, carol = server.client(), server.client(), server.client()
    cid = alice.group_with(bob, carol)["id"]
    kicked = alice.post(
        f"/conversations/{cid}/sanctions", {"user_id": bob.user_id, "kind": "kick", "duration_seconds": 7200}
    )
    assert kicked.status_code == 201, kicked.text
    members = [m["user_id"] for m in alice.get(f"/conversations/{cid}/members").json()["data"]]
    assert bob.user_id not in members and carol.user_id in members
    with server.services.db.transaction() as conn:
        row = conn.execute(
            select(conversation_members.c.is_active, conversation_members.c.left_at).where(
                conversation_members.c.conversation_id == cid, conversation_members.c.user_id == bob.user_id
            )
        ).one()
    assert row.is_active is False and row.left_at is not None
    assert_error(bob.get(f"/conversations/{cid}"), 403, "not_a_member")
    assert_error(bob.post(f"/conversations/{cid}/messages", {"content": "x", "client_random": 1}), 403, "not_a_member")
    system = alice.get(f"/conversations/{cid}/messages").json()["data"][0]
    assert system["message_type"] == "system" and system["metadata"]["system"]["action"] == "member_kicked"
    refused = assert_error(alice.post(f"/conversations/{cid}/members", {"user_id": bob.user_id}), 403, "sanctioned")
    assert refused["details"]["user_ids"] == [bob.user_id]
    time_travel.append(timedelta(hours=2, seconds=1))
    assert alice.post(f"/conversations/{cid}/members", {"user_id": bob.user_id}).status_code == 201
    assert send_status(bob, cid) == 201


def test_who_may_sanction_whom(server: RunningServer) -> None:
    owner, admin, mod_member, bob, carol = (server.client() for _ in range(5))
    cid = owner.group_with(admin, mod_member, bob, carol)["id"]
    for user, role in ((admin, "admin"), (mod_member, "moderator")):
        assert owner.patch(f"/conversations/{cid}/members/{user.user_id}/role", {"role": role}).status_code == 200

    def sanction(actor: UserClient, target: UserClient, kind: str = "mute", **extra: Any) -> Any:
        body = {"user_id": target.user_id, "kind": kind, "duration_seconds": 600, **extra}
        return actor.post(f"/conversations/{cid}/sanctions", body)

    assert_error(sanction(bob, carol), 403, "insufficient_role")  # plain members cannot
    assert_error(sanction(mod_member, admin), 403, "insufficient_role")  # not above yourself
    assert_error(sanction(admin, owner), 403, "insufficient_role")
    assert_error(sanction(admin, admin), 422, "cannot_sanction_self")
    assert sanction(mod_member, bob).status_code == 201  # a conversation moderator mutes a member
    assert_error(sanction(owner, server.client()), 422, "member_not_found")
    assert_error(sanction(owner, bob, "ban"), 422)
    assert_error(sanction(owner, bob, expires_at=(utcnow() + timedelta(hours=1)).isoformat()), 422)  # both
    assert_error(sanction(owner, bob, duration_seconds=None, expires_at=utcnow().isoformat()), 422)  # past
    assert_error(sanction(owner, bob, duration_seconds=0), 422)
    assert_error(sanction(owner, bob, duration_seconds=366 * 86400), 422)
    outsider = server.client()
    assert_error(sanction(outsider, bob), 403, "not_a_member")
    assert_error(outsider.get(f"/conversations/{cid}/sanctions"), 403, "not_a_member")
    # a global moderator, not a member, may; but kicking needs a group and spares the last owner
    global_mod = moderator_client(server)
    assert sanction(global_mod, admin, "restrict").status_code == 201
    assert_error(sanction(global_mod, owner, "kick"), 403, "last_owner")
    direct = bob.direct_with(carol)["id"]
    assert_error(
        global_mod.post(
            f"/conversations/{direct}/sanctions", {"user_id": bob.user_id, "kind": "kick", "duration_seconds": 60}
        ),
        422,
        "not_a_group",
    )
    assert (
        global_mod.post(
            f"/conversations/{direct}/sanctions", {"user_id": bob.user_id, "kind": "mute", "duration_seconds": 60}
        ).status_code
        == 201
    )
    assert send_status(bob, direct) == 403
    # a newer decision replaces the older one of the same kind
    first = sanction(owner, carol, duration_seconds=60).json()["data"]
    second = sanction(owner, carol, duration_seconds=120).json()["data"]
    listed = owner.get(f"/conversations/{cid}/sanctions").json()["data"]
    assert second["id"] in [s["id"] for s in listed] and first["id"] not in [s["id"] for s in listed]
    with server.services.db.transaction() as conn:
        revoked = conn.execute(select(sanctions.c.revoked_at).where(sanctions.c.id == first["id"])).scalar_one()
    assert revoked is not None


# the Whispr client's bodies (api.md: reports, sanctions)


def test_the_clients_report_bodies(server: RunningServer) -> None:
    alice, bob, carol = server.client(), server.client(), server.client()
    cid = alice.group_with(bob, carol)["id"]
    on_user = report(
        bob, reported_user_id=alice.user_id, conversation_id=cid, category="spam", description="keeps sending ads"
    )
    assert (on_user["reported_user_id"], on_user["conversation_id"], on_user["message_id"]) == (
        alice.user_id,
        cid,
        None,
    )
    assert on_user["description"] == "keeps sending ads" == on_user["reason"]
    message = alice.send(cid, "you are all idiots")
    body = {"reported_user_id": alice.user_id, "conversation_id": cid, "message_id": message["id"]}
    on_message = report(carol, **body, category="harassment", description="insults")
    assert on_message["description"] == "insults" and on_message["message_id"] == message["id"]
    assert carol.get(f"/reports/{on_message['id']}").json()["data"]["description"] == "insults"
    with server.services.db.transaction() as conn:
        stored = conn.execute(select(reports.c.reason).where(reports.c.id == on_message["id"])).scalar_one()
    assert stored == "insults"
    # the older names still work; both names at once must agree
    older = report(carol, user_id=bob.user_id, reason="older shape")
    assert older["reported_user_id"] == bob.user_id and older["description"] == "older shape"
    mixed = {"reported_user_id": alice.user_id, "user_id": carol.user_id, "category": "spam"}
    assert "reported_user_id" in assert_error(bob.post("/reports", mixed), 422)["details"]
    wrong = {**body, "reported_user_id": bob.user_id, "category": "spam"}  # not the message's sender
    assert_error(carol.post("/reports", wrong), 422)


def test_the_clients_resolution_bodies(server: RunningServer) -> None:
    alice, bob, carol = server.client(), server.client(), server.client()
    mod = moderator_client(server)
    cid = alice.group_with(bob, carol)["id"]
    user_report = report(bob, reported_user_id=alice.user_id, conversation_id=cid, description="ads")
    message_report = report(carol, message_id=alice.send(cid, "spam")["id"], reported_user_id=alice.user_id)
    restrict_report = report(carol, reported_user_id=alice.user_id, conversation_id=cid, category="harassment")

    dismissed = mod.put(f"/reports/{user_report['id']}/resolve", {"action": "dismiss", "notes": "not spam"})
    assert dismissed.status_code == 200, dismissed.text
    view = dismissed.json()["data"]
    assert (view["status"], view["resolution"]["action"], view["action"], view["note"]) == (
        "resolved_dismissed",
        "dismiss",
        "none",
        "not spam",
    )
    assert_error(mod.put(f"/reports/{message_report['id']}/resolve", {"notes": "no action given"}), 422)
    assert_error(mod.put(f"/reports/{message_report['id']}/resolve", {"action": "smite"}), 422)
    bad = {"action": "dismiss", "resolution": "action_taken"}
    assert_error(mod.put(f"/reports/{message_report['id']}/resolve", bad), 422)

    deleted = mod.put(f"/reports/{message_report['id']}/resolve", {"action": "delete_message"}).json()["data"]
    assert (deleted["status"], deleted["resolution"]["action"], deleted["action"]) == (
        "resolved_action",
        "delete_message",
        "delete_message",
    )
    assert bob.get(f"/messages/{message_report['message_id']}").json()["data"]["is_deleted"] is True

    restricted = mod.put(f"/reports/{restrict_report['id']}/resolve", {"action": "shadow_restrict", "notes": "x"})
    assert restricted.status_code == 200, restricted.text
    assert restricted.json()["data"]["action"] == "restrict"
    sanction = mod.get(f"/conversations/{cid}/sanctions").json()["data"]
    assert [(s["user_id"], s["type"], s["kind"], s["expires_at"]) for s in sanction] == [
        (alice.user_id, "shadow_restrict", "restrict", None)
    ]
    assert send_status(alice, cid) == 403


def test_the_clients_sanction_bodies(server: RunningServer) -> None:
    owner, bob, carol, dave = (server.client() for _ in range(4))
    cid = owner.group_with(bob, carol, dave)["id"]
    path = f"/conversations/{cid}/sanctions"
    until = (utcnow() + timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    muted = owner.post(path, {"user_id": bob.user_id, "type": "mute", "reason": "flooding", "expires_at": until})
    assert muted.status_code == 201, muted.text
    mute = muted.json()["data"]
    assert (mute["type"], mute["kind"], mute["reason"], mute["is_active"]) == ("mute", "mute", "flooding", True)
    assert mute["expires_at"].startswith(until[:19])
    assert_error(bob.post(f"{path[: -len('/sanctions')]}/messages", {"content": "x", "client_random": 1}), 403)

    # no expires_at: in force until lifted
    made = owner.post(path, {"sanction": {"user_id": carol.user_id, "type": "shadow_restrict", "reason": "trolling"}})
    assert made.status_code == 201, made.text
    restrict = made.json()["data"]
    assert (restrict["type"], restrict["kind"], restrict["expires_at"]) == ("shadow_restrict", "restrict", None)
    mine = owner.send(cid, "react to me")
    refused = assert_error(carol.post(f"/messages/{mine['id']}/reactions", {"reaction": "👍"}), 403, "sanctioned")
    assert "until a moderator lifts it" in refused["error"] and refused["details"]["expires_at"] is None
    assert send_status(carol, cid) == 403

    kicked = owner.post(path, {"user_id": dave.user_id, "type": "kick", "reason": "spam bot"})
    assert kicked.status_code == 201 and kicked.json()["data"]["type"] == "kick", kicked.text
    members = [m["user_id"] for m in owner.get(f"/conversations/{cid}/members").json()["data"]]
    assert dave.user_id not in members
    back = assert_error(owner.post(f"/conversations/{cid}/members", {"user_id": dave.user_id}), 403, "sanctioned")
    assert "until a moderator lifts it" in back["error"]

    listed = owner.get(path).json()["data"]
    assert {(s["user_id"], s["type"]) for s in listed} == {
        (bob.user_id, "mute"),
        (carol.user_id, "shadow_restrict"),
        (dave.user_id, "kick"),
    }
    for body in (
        {"user_id": bob.user_id, "type": "ban"},
        {"user_id": bob.user_id, "reason": "no type"},
        {"user_id": bob.user_id, "type": "mute", "kind": "kick"},
    ):
        assert "type" in assert_error(owner.post(path, body), 422)["details"], body
    # the older shape is still accepted
    older = owner.post(path, {"user_id": bob.user_id, "kind": "restrict", "duration_seconds": 60})
    assert older.status_code == 201 and older.json()["data"]["type"] == "shadow_restrict", older.text

    lifted = owner.delete(f"{path}/{restrict['id']}")
    assert lifted.status_code == 200 and lifted.json()["data"]["is_active"] is False
    assert send_status(carol, cid) == 201


# what the Whispr client reads (mobile-app src/types/moderation.ts: Report, ReportStats,
# ConversationSanction), with the bodies its moderationApi.ts sends

CLIENT_REPORT_KEYS = {
    "id",
    "reporter_id",
    "reported_user_id",
    "conversation_id",
    "message_id",
    "category",
    "description",
    "evidence",
    "status",
    "resolution",
    "auto_escalated",
    "created_at",
    "updated_at",
}
CLIENT_SANCTION_KEYS = {
    "id",
    "conversation_id",
    "user_id",
    "type",
    "reason",
    "issued_by",
    "expires_at",
    "active",
    "created_at",
}


def test_the_client_reads_reports_and_stats_in_its_shapes(pg_url: str, key_path: str) -> None:
    url = fresh_database(pg_url, "whispr_moderation_client", key_path)  # stats count every report
    with serve(make_settings(url, key_path)) as server:
        # resolved_today counts from 00:00 UTC: the service's day is noon onwards, a millisecond a tick
        noon, ticks = utcnow().replace(hour=12, minute=0, second=0, microsecond=0), itertools.count()
        server.services.clock = lambda: noon + timedelta(milliseconds=next(ticks))
        alice, bob, carol = server.client(), server.client(), server.client()
        mod = moderator_client(server)
        cid = alice.group_with(bob, carol)["id"]
        # createReport: a user report without a message, and one on a message (the client's
        # categories offensive and nudity are accepted and kept as sent)
        created = bob.post(
            "/reports", {"reported_user_id": alice.user_id, "category": "offensive", "description": "rude"}
        )
        assert created.status_code == 201, created.text
        rude = created.json()["data"]
        assert CLIENT_REPORT_KEYS - {"evidence"} <= set(rude)  # evidence: moderators only
        assert (rude["category"], rude["status"], rude["resolution"], rude["auto_escalated"]) == (
            "offensive",
            "pending",
            None,
            False,
        )
        assert rude["updated_at"] == rude["created_at"] and rude["description"] == "rude"
        picture = alice.send(cid, "a picture")
        body = {"reported_user_id": alice.user_id, "conversation_id": cid, "message_id": picture["id"]}
        nude = report(carol, **body, category="nudity")
        threat = report(carol, reported_user_id=alice.user_id, conversation_id=cid, category="violence")

        # getMyReports(limit, offset): the caller's, in `data`
        mine = bob.get("/reports", params={"limit": 20, "offset": 0})
        assert mine.status_code == 200 and [r["id"] for r in mine.json()["data"]] == [rude["id"]]
        # getReportQueue / getReportStats: every key the moderator's screens read
        queue = mod.get("/reports/queue").json()["data"]
        assert [r["id"] for r in queue] == [rude["id"], nude["id"], threat["id"]]
        assert all(set(r) >= CLIENT_REPORT_KEYS and r["status"] == "pending" for r in queue)
        assert all(isinstance(r["reporter_id"], str) and isinstance(r["reported_user_id"], str) for r in queue)
        filtered = mod.get("/reports/queue", params={"status": "pending", "category": "nudity"}).json()["data"]
        assert [r["id"] for r in filtered] == [nude["id"]]
        stats = mod.get("/reports/stats")
        assert stats.status_code == 200
        dashboard = {k: stats.json()["data"][k] for k in ("pending", "under_review", "resolved_today", "by_category")}
        assert dashboard == {
            "pending": 3,
            "under_review": 0,
            "resolved_today": 0,
            "by_category": {"offensive": 1, "nudity": 1, "violence": 1},
        }

        # resolveReport(id, action, notes): the review screen's dismiss, warn and ban
        warned = mod.put(f"/reports/{rude['id']}/resolve", {"action": "warn", "notes": "User warned"})
        assert warned.status_code == 200, warned.text
        view = warned.json()["data"]
        assert view["status"] == "resolved_action" and view["sanction_id"] is None  # user-service's sanction
        assert view["resolution"] == {
            "action": "warn",
            "resolved_by": mod.user_id,
            "resolved_at": view["updated_at"],
            "notes": "User warned",
        }
        dismissed = mod.put(f"/reports/{nude['id']}/resolve", {"action": "dismiss"}).json()["data"]
        assert dismissed["status"] == "resolved_dismissed"
        assert (dismissed["resolution"]["action"], dismissed["resolution"]["notes"]) == ("dismiss", None)
        banned = mod.put(f"/reports/{threat['id']}/resolve", {"action": "ban", "notes": "threats"}).json()["data"]
        assert (banned["status"], banned["resolution"]["action"]) == ("resolved_action", "ban")
        assert send_status(alice, cid) == 201  # ban is user-service's: nothing changes here
        assert_error(mod.put(f"/reports/{rude['id']}/resolve", {"action": "dismiss"}), 409, "already_resolved")

        stats_after = mod.get("/reports/stats").json()["data"]
        assert (stats_after["pending"], stats_after["resolved_today"], stats_after["by_category"]) == (0, 3, {})
        assert stats_after["by_status"] == {
            "pending": 0,
            "under_review": 0,
            "resolved_action": 2,
            "resolved_dismissed": 1,
        }
        # the reporter's view: what was decided and when, not by whom or the notes
        seen = bob.get(f"/reports/{rude['id']}").json()["data"]
        assert seen["status"] == "resolved_action" and seen["updated_at"] == view["updated_at"]
        assert seen["resolution"] == {
            "action": "warn",
            "resolved_by": None,
            "resolved_at": view["resolution"]["resolved_at"],
            "notes": None,
        }
        # and the event on the reporter's topic says the same
        (event,) = [e for e in outbox(server, "moderation.report_resolved") if e["payload"]["report_id"] == rude["id"]]
        assert event["payload"] == {"report_id": rude["id"], "status": seen["status"], "resolution": seen["resolution"]}
        assert event["topics"] == [f"user:{bob.user_id}"]
        # the queue's status filter: the client's values, and `resolved` (the older one) for both
        by_status = {
            status: [r["id"] for r in mod.get("/reports/queue", params={"status": status}).json()["data"]]
            for status in ("resolved_action", "resolved_dismissed", "resolved", "under_review")
        }
        assert by_status == {
            "resolved_action": [rude["id"], threat["id"]],
            "resolved_dismissed": [nude["id"]],
            "resolved": [rude["id"], nude["id"], threat["id"]],
            "under_review": [],
        }
        assert "status" in assert_error(mod.get("/reports/queue", params={"status": "closed"}), 422)["details"]
        with server.services.db.transaction() as conn:
            stored = dict(conn.execute(select(reports.c.id, reports.c.status)).all())
        assert stored == {
            rude["id"]: "resolved_action",
            nude["id"]: "resolved_dismissed",
            threat["id"]: "resolved_action",
        }


def test_the_client_reads_sanctions_in_its_shape(server: RunningServer) -> None:
    owner, bob = server.client(), server.client()
    cid = owner.group_with(bob)["id"]
    path = f"/conversations/{cid}/sanctions"
    created = owner.post(path, {"user_id": bob.user_id, "type": "mute", "reason": "Spamming"})
    assert created.status_code == 201, created.text
    sanction = created.json()["data"]
    assert set(sanction) >= CLIENT_SANCTION_KEYS
    assert (sanction["issued_by"], sanction["active"], sanction["type"]) == (owner.user_id, True, "mute")
    assert (sanction["created_by"], sanction["is_active"]) == (owner.user_id, True)  # the older names stay
    listed = owner.get(path).json()["data"]
    assert [(s["id"], s["issued_by"], s["active"]) for s in listed] == [(sanction["id"], owner.user_id, True)]
    lifted = owner.delete(f"{path}/{sanction['id']}")
    assert lifted.status_code == 200 and lifted.json()["data"]["active"] is False
    assert owner.get(path).json()["data"] == []
    history = owner.get(path, params={"include_inactive": "true"}).json()["data"]
    assert [(s["id"], s["active"], s["is_active"]) for s in history] == [(sanction["id"], False, False)]
