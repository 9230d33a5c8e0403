"""The web chat of the local run in a real browser: two users in two browser contexts chat over
the REST API and the Phoenix socket; one loses the network, the other keeps writing, and when the
network comes back the first has every message, in order. Screenshots are saved as artifacts."""

from __future__ import annotations

import dataclasses
import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from shared.http.web_chat import dev_user_id
from tests.browser.proxy import CuttableProxy, cuttable_proxy
from tests.support import BASE, RunningServer, make_settings, serve

WAIT_MS = 30_000  # an upper bound for things that happen on their own; tests wait for conditions


@pytest.fixture(autouse=True)
def _patient_expectations() -> None:
    from playwright.sync_api import expect

    expect.set_options(timeout=WAIT_MS)


@pytest.fixture
def proxy(server: RunningServer) -> Iterator[CuttableProxy]:
    port = urlsplit(server.url).port
    assert port is not None
    with cuttable_proxy(port) as running:
        yield running


def _page(browser: Any, base_url: str) -> Any:
    context = browser.new_context(viewport={"width": 1100, "height": 720})
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    page.on("pageerror", lambda error: print(f"page error on {base_url}: {error}"))
    page.on("console", lambda message: print(f"console on {base_url}: {message.text}"))
    page.on("dialog", lambda dialog: (print(f"alert on {base_url}: {dialog.message}"), dialog.dismiss()))
    page.on("websocket", lambda socket: _log_frames(socket, base_url))
    page.goto(base_url + "/messaging/chat/")
    return page


def _log_frames(socket: Any, base_url: str) -> None:
    """Each frame's topic and event, printed (pytest shows them when a test fails): what the page
    pushed and what the relay answered, without tokens or contents."""

    def show(direction: str, frame: Any) -> None:
        text = frame if isinstance(frame, str) else str(frame)
        if '"heartbeat"' not in text and '"phoenix"' not in text:
            print(f"{direction} {base_url}: {text[:140]}")

    socket.on("framesent", lambda frame: show("sent", frame))
    socket.on("framereceived", lambda frame: show("received", frame))


def _sign_in(page: Any, name: str) -> None:
    page.fill("#signin-name", name)
    page.click("#signin-form button")
    page.wait_for_selector("#connection[data-state='online']")


def _texts(page: Any) -> list[str]:
    return list(page.locator("#messages .msg .body").all_inner_texts())


def _wait_texts(page: Any, expected: list[str]) -> None:
    from playwright.sync_api import expect

    expect(page.locator("#messages .msg .body")).to_have_text(expected, timeout=WAIT_MS)


def test_two_people_chat_and_one_catches_up_after_losing_the_network(
    browser: Any, server: RunningServer, proxy: CuttableProxy, artifacts: Path
) -> None:
    from playwright.sync_api import expect

    tag = secrets.token_hex(3)
    alice_name, bob_name = f"alice-{tag}", f"bob-{tag}"
    alice = _page(browser, server.url)
    bob = _page(browser, proxy.url)  # Bob's network goes through a proxy the test can cut
    _sign_in(alice, alice_name)
    _sign_in(bob, bob_name)

    # Alice opens a direct conversation with Bob by name and writes
    alice.fill("#new-names", bob_name)
    alice.click("#new-conversation button")
    expect(alice.locator("#conversation-title")).to_have_text(bob_name)
    expect(alice.locator("#composer")).to_be_visible()  # the conversation's channel is joined
    alice.fill("#text", "Salut Bob")
    alice.press("#text", "Enter")
    _wait_texts(alice, ["Salut Bob"])

    # Bob sees the conversation appear live, opens it: the history is there, Alice's tick turns read
    bob.locator(f"#conversations li >> text={alice_name}").click()
    expect(bob.locator("#composer")).to_be_visible()
    _wait_texts(bob, ["Salut Bob"])
    expect(alice.locator("#messages .msg.mine .ticks")).to_have_attribute("data-status", "read")
    expect(bob.locator("#presence")).to_contain_text(alice_name)

    # Bob types: Alice sees it; Bob sends: Alice gets it live
    bob.type("#text", "Salut")
    expect(alice.locator("#typing")).to_have_text(f"{bob_name} typing…")
    bob.fill("#text", "Salut Alice")
    bob.press("#text", "Enter")
    _wait_texts(alice, ["Salut Bob", "Salut Alice"])
    expect(alice.locator("#typing")).to_be_hidden()

    # Alice reacts to Bob's message; edits and deletes her own: Bob sees each
    bobs = alice.locator("#messages .msg", has_text="Salut Alice")
    bobs.hover()
    bobs.get_by_label("react 👍").click()
    expect(bob.locator("#messages .msg", has_text="Salut Alice").locator(".reactions")).to_have_text("👍 1")
    alice.fill("#text", "typo")
    alice.press("#text", "Enter")
    _wait_texts(bob, ["Salut Bob", "Salut Alice", "typo"])
    typo = alice.locator("#messages .msg", has_text="typo")
    typo.hover()
    typo.get_by_label("edit").click()
    alice.fill("#text", "Ça va ?")
    alice.press("#text", "Enter")
    _wait_texts(bob, ["Salut Bob", "Salut Alice", "Ça va ?"])
    expect(bob.locator("#messages .msg", has_text="Ça va ?").locator(".edited")).to_be_visible()
    alice.fill("#text", "oops")
    alice.press("#text", "Enter")
    _wait_texts(bob, ["Salut Bob", "Salut Alice", "Ça va ?", "oops"])
    oops = alice.locator("#messages .msg", has_text="oops")
    oops.hover()
    oops.get_by_label("delete").click()
    _wait_texts(bob, ["Salut Bob", "Salut Alice", "Ça va ?", "message deleted"])

    # Alice schedules a message for later: it is listed as pending until she cancels it
    alice.fill("#text", "Joyeux anniversaire")
    alice.click("#schedule")
    expect(alice.locator("#scheduled-list li")).to_contain_text("Joyeux anniversaire")
    alice.screenshot(path=str(artifacts / "web-chat-alice.png"))
    bob.screenshot(path=str(artifacts / "web-chat-bob.png"))
    alice.locator("#scheduled-list li").get_by_label("cancel scheduled message").click()
    expect(alice.locator("#scheduled")).to_be_hidden()

    # Bob's network drops; Alice goes on writing; it comes back: Bob has everything, in order
    proxy.cut()
    expect(bob.locator("#connection")).to_have_attribute("data-state", "offline")
    while_away = [f"while you were away {n}" for n in range(1, 6)]
    for text in while_away:
        alice.fill("#text", text)
        alice.press("#text", "Enter")
    expected = ["Salut Bob", "Salut Alice", "Ça va ?", "message deleted", *while_away]
    _wait_texts(alice, expected)
    bob.screenshot(path=str(artifacts / "web-chat-bob-offline.png"))
    assert _texts(bob) == expected[:4], "Bob is offline: nothing new can reach him"
    proxy.restore()
    expect(bob.locator("#connection")).to_have_attribute("data-state", "online")
    _wait_texts(bob, expected)
    bob.screenshot(path=str(artifacts / "web-chat-bob-back.png"))

    # what Bob's page shows is the store's history, in seq order
    token = server.token(dev_user_id(bob_name))
    conversation_id = alice.locator("#conversations li.active").get_attribute("data-id")
    history = httpx.get(
        f"{server.url}{BASE}/conversations/{conversation_id}/messages",
        headers={"Authorization": f"Bearer {token}"},
    ).json()["data"]
    shown = [m["content"] or "message deleted" for m in reversed(history)]
    assert shown == expected
    seqs = [int(s) for s in bob.locator("#messages .msg").evaluate_all("nodes => nodes.map(n => n.dataset.seq)")]
    assert seqs == sorted(seqs) == list(range(1, len(expected) + 1))
    for page in (alice, bob):
        page.context.close()


def _dispatch_until(page: Any, condition: Callable[[], object]) -> None:
    """Let Playwright dispatch its events (route handlers run then) until `condition` holds."""
    deadline = time.monotonic() + WAIT_MS / 1000
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        page.wait_for_timeout(20)


def test_nothing_can_be_written_into_a_conversation_before_its_channel_is_joined(
    browser: Any, server: RunningServer
) -> None:
    """A message written before the page has joined the conversation's channel has nothing to go
    out on: the composer appears only with the join's reply. The history request (the page reads
    it before joining) is held, as a busy machine or a slow network holds it."""
    from playwright.sync_api import expect

    tag = secrets.token_hex(3)
    alice = _page(browser, server.url)
    _sign_in(alice, f"alice-{tag}")
    held: list[Any] = []

    def is_history(url: str) -> bool:
        return "/messages?limit=50" in url

    def hold(route: Any) -> None:
        held.append(route)

    alice.route(is_history, hold, times=1)
    alice.fill("#new-names", f"bob-{tag}")
    alice.click("#new-conversation button")
    _dispatch_until(alice, lambda: held)
    expect(alice.locator("#conversation-title")).to_have_text(f"bob-{tag}")
    expect(alice.locator("#composer")).to_be_hidden()
    held[0].continue_()
    expect(alice.locator("#composer")).to_be_visible()
    alice.fill("#text", "first")
    alice.press("#text", "Enter")
    _wait_texts(alice, ["first"])
    alice.context.close()


def test_the_api_reference_renders_the_document_and_takes_a_token(
    browser: Any, server: RunningServer, artifacts: Path
) -> None:
    from playwright.sync_api import expect

    # the document is built on first use (seconds on a busy machine): wait for it, then for the page
    assert httpx.get(server.url + "/messaging/api/openapi.json", timeout=120).status_code == 200
    page = _page(browser, server.url)
    page.goto(server.url + "/messaging/api/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Whispr messaging API")
    expect(
        page.locator(".opblock-summary-path", has_text="/conversations/{conversation_id}/messages").first
    ).to_be_visible()
    page.screenshot(path=str(artifacts / "api-reference.png"))

    # the token box, then a call from the page
    user = server.client()
    page.click(".auth-wrapper .authorize")
    page.locator(".modal-ux input[type=text]").first.fill(user.token)
    page.locator(".modal-ux button.authorize").first.click()
    page.locator(".modal-ux button.close-modal").click()
    operation = page.locator("#operations-conversations-conversations_list_conversations")
    operation.locator(".opblock-summary").click()
    operation.locator("button.execute").click()
    expect(operation.locator(".responses-table .response .response-col_status").first).to_have_text("200")
    page.context.close()


def test_the_chat_and_its_token_route_exist_only_with_the_dev_key(server: RunningServer) -> None:
    assert httpx.get(server.url + "/").headers.get("location", "").endswith("/messaging/chat/")
    session = httpx.post(server.url + "/messaging/chat/session", json={"name": "dora"})
    assert session.status_code == 200
    assert session.json()["user_id"] == dev_user_id("dora") == dev_user_id(" Dora ")
    token = session.json()["token"]
    assert (
        httpx.get(server.url + BASE + "/conversations", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    )
    bad = httpx.post(server.url + "/messaging/chat/session", json={"name": "<script>"})
    assert bad.status_code == 422 and bad.json()["code"] == "validation_failed"
    page = httpx.get(server.url + "/messaging/chat/")
    assert page.status_code == 200 and "phoenix.min.js" in page.text and "http" not in page.text.split("<body>")[1]
    assert httpx.get(server.url + "/messaging/chat/phoenix.min.js").text.startswith("var Phoenix=")


def test_with_production_keys_there_is_no_chat_and_no_token_route(pg_url: str, key_path: str) -> None:
    """With JWT_JWKS_URL set (production) the chat's routes are not mounted: nothing mints tokens."""
    settings = dataclasses.replace(make_settings(pg_url, key_path), jwt_jwks_url="http://127.0.0.1:9/jwks.json")
    with serve(settings) as production:
        for method, path in [("POST", "/messaging/chat/session"), ("GET", "/messaging/chat/"), ("GET", "/")]:
            answer = httpx.request(
                method, production.url + path, json={"name": "mallory"} if method == "POST" else None
            )
            assert answer.status_code in (404, 405), (method, path, answer.status_code)
            assert "token" not in answer.text
