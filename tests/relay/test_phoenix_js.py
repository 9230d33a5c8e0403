"""The official `phoenix` JavaScript client (npm), run by Node, against the relay."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from tests.support import RunningServer


def test_two_users_with_the_phoenix_js_client(relay: RunningServer, phoenix_js: Path) -> None:
    alice, bob = relay.client(), relay.client()
    conv = alice.direct_with(bob)
    env = {
        **os.environ,
        "RELAY_ENDPOINT": relay.url.replace("http://", "ws://") + "/messaging/socket",
        "CONVERSATION_ID": conv["id"],
        "ALICE_ID": alice.user_id,
        "ALICE_TOKEN": alice.token,
        "BOB_ID": bob.user_id,
        "BOB_TOKEN": bob.token,
    }
    done = subprocess.run(
        ["node", "two_users.js"], cwd=phoenix_js, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    result = json.loads(done.stdout.strip().splitlines()[-1])

    assert result["alice_user_join"] == {"user_id": alice.user_id}
    assert result["bob_summary_ids"] == [conv["id"]]
    assert result["alice_joined_conversation_id"] == conv["id"]
    assert result["alice_sees_online"] == sorted([alice.user_id, bob.user_id])
    assert result["typing"] == {"user_id": bob.user_id, "typing": True}

    sent = result["sent"]
    assert sent["content"] == "hello from phoenix.js" and sent["seq"] == 1
    assert result["bob_got"] == result["bob_got_on_user_topic"] == {k: v for k, v in sent.items() if k != "status"}
    history = bob.get(f"/conversations/{conv['id']}/messages").json()["data"]
    assert history == [result["bob_got"]]

    assert result["bob_read_reply"]["last_read_seq"] == 1
    assert result["receipt"] == {
        "message_id": sent["id"],
        "conversation_id": conv["id"],
        "user_id": bob.user_id,
        "status": "read",
        "up_to_seq": 1,
    }
    assert result["conversation_read"]["user_id"] == bob.user_id
    assert result["conversation_read"]["up_to_seq"] == 1
    assert result["online_after_bob_left"] == [alice.user_id]
    assert alice.get(f"/messages/{sent['id']}").json()["data"]["status"] == "read"
