"""A device's local copy of a user's state, built by a full REST read or by replaying /sync.

This is what a client does; the sync tests check that both ways end in the same place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tests.support import UserClient

Msg = tuple[int, str, bool]  # seq, content, is_deleted


@dataclass
class Replica:
    conversations: dict[str, dict[str, Any]] = field(default_factory=dict)
    messages: dict[str, dict[str, Msg]] = field(default_factory=dict)

    # --- a full read -------------------------------------------------------------------
    @classmethod
    def full_read(cls, client: UserClient) -> Replica:
        replica = cls()
        listed = client.get("/conversations", params={"include_archived": "true"})
        assert listed.status_code == 200, listed.text
        for conv in listed.json()["data"]:
            replica._set_conversation(conv)
            replica.messages[conv["id"]] = _all_messages(client, conv["id"])
        return replica

    def _set_conversation(self, conv: dict[str, Any]) -> None:
        self.conversations[conv["id"]] = {
            "type": conv["type"],
            "name": conv["name"],
            "members": frozenset(conv["member_user_ids"]),
            "is_pinned": conv["is_pinned"],
            "is_archived": conv["is_archived"],
            "last_read_seq": conv["last_read_seq"],
        }

    # --- replaying /sync ---------------------------------------------------------------
    def replay(self, client: UserClient, since: str, page_size: int = 3) -> None:
        cursor = since
        while True:
            page = client.get("/sync", params={"since": cursor, "limit": page_size})
            assert page.status_code == 200, page.text
            body = page.json()
            for change in body["data"]:
                self.apply(client, change)
            cursor = body["meta"]["next_cursor"]
            if not body["meta"]["has_more"]:
                return

    def apply(self, client: UserClient, change: dict[str, Any]) -> None:
        name, payload, cid = change["event"], change["payload"], change["conversation_id"]
        me = client.user_id
        if name in ("conversation_created", "conversation_updated"):
            self._set_conversation_from_server(client, cid)
        elif name == "conversation_deleted":
            self._drop(cid)
        elif name == "member_added":
            if payload["user_id"] == me or cid not in self.conversations:
                self._set_conversation_from_server(client, cid)
            else:
                conv = self.conversations[cid]
                conv["members"] = conv["members"] | {payload["user_id"]}
        elif name == "member_removed":
            if payload["user_id"] == me:
                self._drop(cid)
            elif cid in self.conversations:
                conv = self.conversations[cid]
                conv["members"] = conv["members"] - {payload["user_id"]}
        elif name in ("new_message", "message_updated"):
            message = payload["message"]
            if cid in self.conversations:
                self.messages.setdefault(cid, {})[message["id"]] = (
                    message["seq"],
                    message["content"],
                    message["is_deleted"],
                )
        elif name == "message_deleted":
            known = self.messages.get(cid, {})
            if payload["message_id"] in known:
                if payload["delete_for_everyone"]:
                    seq, _, _ = known[payload["message_id"]]
                    known[payload["message_id"]] = (seq, "", True)
                else:
                    del known[payload["message_id"]]
        elif name == "message_expired":
            self.messages.get(cid, {}).pop(payload["message_id"], None)
        elif name == "conversation_read":
            if payload["user_id"] == me and cid in self.conversations:
                conv = self.conversations[cid]
                conv["last_read_seq"] = max(conv["last_read_seq"], payload["up_to_seq"])
        elif name == "conversation_pinned" and cid in self.conversations:
            self.conversations[cid]["is_pinned"] = payload["pinned"]
            if payload["pinned"]:
                self.conversations[cid]["is_archived"] = False
        elif name == "conversation_archived" and cid in self.conversations:
            self.conversations[cid]["is_archived"] = payload["archived"]
            if payload["archived"]:
                self.conversations[cid]["is_pinned"] = False

    def _set_conversation_from_server(self, client: UserClient, cid: str) -> None:
        """What a client does on hearing of a conversation it lacks: fetch it (and its history)."""
        response = client.get(f"/conversations/{cid}")
        if response.status_code != 200:
            self._drop(cid)
            return
        known = cid in self.conversations
        self._set_conversation(response.json()["data"])
        if not known:
            self.messages[cid] = _all_messages(client, cid)

    def _drop(self, cid: str | None) -> None:
        if cid is not None:
            self.conversations.pop(cid, None)
            self.messages.pop(cid, None)


def _all_messages(client: UserClient, cid: str) -> dict[str, Msg]:
    out: dict[str, Msg] = {}
    params: dict[str, Any] = {"limit": 100}
    while True:
        page = client.get(f"/conversations/{cid}/messages", params=params)
        assert page.status_code == 200, page.text
        body = page.json()
        for m in body["data"]:
            out[m["id"]] = (m["seq"], m["content"], m["is_deleted"])
        if not body["meta"]["has_more"]:
            return out
        params = {"limit": 100, "before_seq": body["meta"]["next_before_seq"]}
