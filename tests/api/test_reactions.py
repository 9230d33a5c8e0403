"""Reactions over REST on PostgreSQL (rules.md: one emoji grapheme per reaction, at most 5
different emojis per user per message and 50 distinct emojis per message)."""

from __future__ import annotations

import concurrent.futures
from urllib.parse import quote

from shared.app.reactions import add_reaction, remove_reaction
from shared.domain.models import Actor
from tests.api.event_rows import recorded
from tests.support import RunningServer, UserClient, assert_error, new_id

# 51 different single-code-point emojis with emoji presentation: U+1F600 .. U+1F632
EMOJIS = [chr(cp) for cp in range(0x1F600, 0x1F633)]


def _path(message_id: str, emoji: str | None = None) -> str:
    path = f"/messages/{message_id}/reactions"
    return path if emoji is None else f"{path}/{quote(emoji, safe='')}"


def _react(client: UserClient, message_id: str, emoji: str) -> int:
    return client.post(_path(message_id), {"reaction": emoji}).status_code


def test_add_list_remove_with_counts_and_events(server: RunningServer) -> None:
    alice, bob = server.client(), server.client()
    conv = alice.direct_with(bob)
    message = alice.send(conv["id"], "react to me")

    first = bob.post(_path(message["id"]), {"reaction": "👍"})
    assert first.status_code == 201, first.text
    reaction = first.json()["data"]
    assert set(reaction) == {"id", "message_id", "user_id", "reaction", "created_at"}
    assert (reaction["message_id"], reaction["user_id"], reaction["reaction"]) == (message["id"], bob.user_id, "👍")
    assert reaction["created_at"].endswith("Z")

    again = bob.post(_path(message["id"]), {"reaction": "👍", "user_id": bob.user_id})  # extra field tolerated
    assert again.status_code == 200 and again.json()["data"]["id"] == reaction["id"]
    assert again.json()["meta"]["duplicate"] is True
    assert alice.post(_path(message["id"]), {"reaction": "👍"}).status_code == 201
    assert alice.post(_path(message["id"]), {"reaction": "❤️"}).status_code == 201

    listed = alice.get(_path(message["id"]))
    assert listed.status_code == 200
    body = listed.json()
    assert [(r["user_id"], r["reaction"]) for r in body["data"]] == [
        (bob.user_id, "👍"),
        (alice.user_id, "👍"),
        (alice.user_id, "❤️"),
    ]
    assert body["meta"]["counts"] == {"👍": 2, "❤️": 1}
    assert list(body["meta"]["counts"]) == ["👍", "❤️"]  # most used first

    assert bob.delete(_path(message["id"], "👍")).status_code == 204
    assert bob.delete(_path(message["id"], "👍")).status_code == 204  # idempotent
    after = bob.get(_path(message["id"])).json()
    assert after["meta"]["counts"] == {"👍": 1, "❤️": 1}
    assert all(r["user_id"] != bob.user_id for r in after["data"])

    added = recorded(server, "reaction_added", conv["id"])
    assert len(added) == 3  # the idempotent repeat recorded nothing
    assert added[0]["topics"] == [f"conversation:{conv['id']}"]
    assert added[0]["seq"] == message["seq"]
    assert added[0]["payload"]["message_id"] == message["id"]
    assert added[0]["payload"]["user_id"] == bob.user_id
    assert added[0]["payload"]["reaction"] == reaction
    removed = recorded(server, "reaction_removed", conv["id"])
    assert len(removed) == 1  # the second DELETE removed nothing
    assert removed[0]["seq"] == message["seq"]
    assert removed[0]["payload"] == {
        "message_id": message["id"],
        "conversation_id": conv["id"],
        "seq": message["seq"],
        "user_id": bob.user_id,
        "reaction": "👍",
    }


def test_five_different_emojis_per_user_per_message(server: RunningServer) -> None:
    alice, bob = server.client(), server.client()
    conv = alice.direct_with(bob)
    message = alice.send(conv["id"])
    for emoji in EMOJIS[:5]:
        assert _react(bob, message["id"], emoji) == 201
    assert_error(bob.post(_path(message["id"]), {"reaction": EMOJIS[5]}), 422, "too_many_reactions")
    assert _react(bob, message["id"], EMOJIS[0]) == 200  # repeating one of the five is still fine
    assert _react(alice, message["id"], EMOJIS[5]) == 201  # the limit is per user
    assert bob.delete(_path(message["id"], EMOJIS[0])).status_code == 204
    assert _react(bob, message["id"], EMOJIS[5]) == 201  # room again after removing one
    mine = [r["reaction"] for r in bob.get(_path(message["id"])).json()["data"] if r["user_id"] == bob.user_id]
    assert sorted(mine) == sorted(EMOJIS[1:6])


def test_fifty_distinct_emojis_per_message(server: RunningServer) -> None:
    owner = server.client()
    others = [server.client() for _ in range(10)]
    conv = owner.group_with(*others, name="Emoji wall")
    message = owner.send(conv["id"])
    for i, user in enumerate(others):  # 10 users x 5 emojis = 50 distinct
        for emoji in EMOJIS[i * 5 : i * 5 + 5]:
            assert _react(user, message["id"], emoji) == 201
    assert_error(owner.post(_path(message["id"]), {"reaction": EMOJIS[50]}), 422, "too_many_distinct_reactions")
    assert _react(owner, message["id"], EMOJIS[0]) == 201  # an emoji already there is fine
    counts = owner.get(_path(message["id"])).json()["meta"]["counts"]
    assert len(counts) == 50 and counts[EMOJIS[0]] == 2 and EMOJIS[50] not in counts


def test_a_reaction_is_exactly_one_emoji_grapheme(server: RunningServer) -> None:
    alice, bob = server.client(), server.client()
    conv = alice.direct_with(bob)
    message = alice.send(conv["id"])
    for bad in ["a", "👍👍", "", " ", "1", "#", "👍a", "🇫", "ok 👍", "❤︎"]:
        assert_error(alice.post(_path(message["id"]), {"reaction": bad}), 422, "invalid_reaction")
    assert_error(alice.post(_path(message["id"]), {"reaction": 1}), 422)
    assert_error(alice.post(_path(message["id"]), {}), 422)
    for good in ["👨‍👩‍👧‍👦", "🇫🇷", "👍🏽"]:
        assert _react(alice, message["id"], good) == 201, good
    # a keycap with `#` survives the URL both ways
    assert _react(alice, message["id"], "#️⃣") == 201
    assert "#️⃣" in alice.get(_path(message["id"])).json()["meta"]["counts"]
    assert alice.delete(_path(message["id"], "#️⃣")).status_code == 204
    counts = alice.get(_path(message["id"])).json()["meta"]["counts"]
    assert counts == {"👨‍👩‍👧‍👦": 1, "🇫🇷": 1, "👍🏽": 1}
    assert_error(alice.delete(_path(message["id"], "nope")), 422, "invalid_reaction")


def test_outsiders_and_deleted_messages(server: RunningServer) -> None:
    alice, bob, carol = server.client(), server.client(), server.client()
    conv = alice.group_with(bob)
    message = alice.send(conv["id"])
    assert _react(bob, message["id"], "👍") == 201
    assert_error(carol.get(_path(message["id"])), 404, "message_not_found")
    assert_error(carol.post(_path(message["id"]), {"reaction": "👍"}), 404, "message_not_found")
    assert_error(carol.delete(_path(message["id"], "👍")), 404, "message_not_found")
    assert_error(alice.get(_path(new_id())), 404)
    assert_error(alice.get("/messages/not-a-uuid/reactions"), 400, "invalid_id")
    assert_error(alice.http.get(_path(message["id"]), headers={"Authorization": ""}), 401)
    # a removed member is an outsider
    assert alice.delete(f"/conversations/{conv['id']}/members/{bob.user_id}").status_code == 204
    assert_error(bob.post(_path(message["id"]), {"reaction": "🎉"}), 404)
    # a tombstone gets no new reactions
    assert alice.delete(f"/messages/{message['id']}", params={"delete_for_everyone": "true"}).status_code == 200
    assert_error(alice.post(_path(message["id"]), {"reaction": "🎉"}), 422, "message_deleted")


def test_use_cases_the_relay_calls_apply_the_same_rules(server: RunningServer) -> None:
    alice, bob = server.client(), server.client()
    conv = alice.direct_with(bob)
    message = alice.send(conv["id"])
    actor = Actor(user_id=bob.user_id, device_id="phone")
    added = add_reaction(server.services, actor, message["id"], "🔥")
    assert added.created and added.reaction["reaction"] == "🔥" and added.reaction["user_id"] == bob.user_id
    assert add_reaction(server.services, actor, message["id"], "🔥").created is False
    assert alice.get(_path(message["id"])).json()["meta"]["counts"] == {"🔥": 1}
    assert remove_reaction(server.services, actor, message["id"], "🔥") is True
    assert remove_reaction(server.services, actor, message["id"], "🔥") is False
    assert alice.get(_path(message["id"])).json()["data"] == []
    assert [e["payload"]["user_id"] for e in recorded(server, "reaction_removed", conv["id"])] == [bob.user_id]


def test_concurrent_adds_never_exceed_the_per_user_limit(server: RunningServer) -> None:
    alice, bob = server.client(), server.client()
    conv = alice.direct_with(bob)
    message = alice.send(conv["id"])
    with concurrent.futures.ThreadPoolExecutor(max_workers=10) as pool:
        statuses = list(pool.map(lambda emoji: _react(bob, message["id"], emoji), EMOJIS[:10]))
    assert sorted(statuses) == [201] * 5 + [422] * 5
    assert len(bob.get(_path(message["id"])).json()["data"]) == 5
    assert len(recorded(server, "reaction_added", conv["id"])) == 5
