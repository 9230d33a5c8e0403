"""The Cloud Tasks scheduler against a Cloud Tasks emulator: real tasks, dispatched as real HTTP
requests at their schedule time to a running gateway's /tasks routes.

The emulator (gcloud-tasks-emulator 0.6.2) keeps tasks in memory and POSTs each one at its
schedule_time, retrying non-2xx answers; ListTasks shows what is still queued. What it does NOT
do, so these tests cannot check it against a server:
- DeleteTask and GetTask (UNIMPLEMENTED): the adapter's delete of a moved or cancelled item's old
  task is not observed; the old task stays queued here, fires at the old time and must find
  nothing to do, which is what the tests assert (and what happens in GCP if a delete fails).
- rejecting a duplicate task name (ALREADY_EXISTS): asking for the same (kind, item, due time)
  twice queues two tasks here, where Cloud Tasks keeps one. The tests use that as a real
  duplicate delivery: the message must still be sent once.
- OIDC: the token's identity and audience are checked on the task as stored, not verified.
"""

from __future__ import annotations

import dataclasses
import os
import re
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from google.cloud import tasks_v2

from shared.adapters.cloud_tasks_scheduler import (
    DISPATCH_MARGIN,
    CloudTasksScheduler,
    build_client,
    task_id,
)
from shared.app.services import utcnow
from shared.config import Settings
from shared.devtools.emulators import Emulator
from shared.devtools.postgres import free_port
from tests.api.test_scheduled import history, iso, parse, quick_settings, row, scheduled_ok
from tests.cloud.conftest import TASKS_QUEUE
from tests.support import BASE, RunningServer, assert_error, fresh_database, serve, wait_for

SECRET = "cloud-tasks-test-secret"
INVOKER = "whispr-msg-invoker@whispr-test.iam.gserviceaccount.com"


def tasks_settings(url: str, key_path: str, emulator: Emulator, port: int, **overrides: Any) -> Settings:
    return dataclasses.replace(
        quick_settings(url, key_path),
        scheduler="cloudtasks",
        tasks_queue=TASKS_QUEUE,
        tasks_target_url=f"http://127.0.0.1:{port}",
        tasks_secret=SECRET,
        tasks_invoker_email=INVOKER,
        tasks_emulator_host=emulator.host,
        **overrides,
    )


@pytest.fixture(scope="module")
def tasks_client(cloud_tasks_emulator: Emulator) -> Iterator[tasks_v2.CloudTasksClient]:
    client = build_client(cloud_tasks_emulator.host)
    yield client
    client.transport.close()


@pytest.fixture(scope="module")
def gateway(pg_url: str, key_path: str, cloud_tasks_emulator: Emulator) -> Iterator[RunningServer]:
    """A gateway whose scheduler is Cloud Tasks; the tasks come back to its own /tasks routes."""
    url = fresh_database(pg_url, "whispr_cloud_tasks", key_path)
    port = free_port()
    with serve(tasks_settings(url, key_path, cloud_tasks_emulator, port), port) as running:
        yield running


def queued(client: tasks_v2.CloudTasksClient, item_id: str) -> list[tasks_v2.Task]:
    """The tasks about `item_id` still in the queue (dispatched ones leave it on a 2xx answer)."""
    return [t for t in client.list_tasks(parent=TASKS_QUEUE) if item_id in t.name or item_id in t.http_request.url]


def drained(client: tasks_v2.CloudTasksClient, emulator: Emulator, *item_ids: str) -> None:
    """Every task about these items was delivered and answered 2xx: none is left in the queue,
    and the emulator logged no failed delivery (a failed one is retried, up to 100 times)."""
    wait_for(lambda: not any(queued(client, i) for i in item_ids), timeout=20, what="every task delivered")
    with open(os.path.join(emulator.data_dir, "emulator.log"), encoding="utf-8", errors="replace") as log:
        failures = [line for line in log if "Error submitting task" in line and any(i in line for i in item_ids)]
    assert failures == []


def scheduler_of(server: RunningServer) -> CloudTasksScheduler:
    scheduler = server.services.scheduler
    assert isinstance(scheduler, CloudTasksScheduler)
    return scheduler


def contents(client: Any, cid: str, content: str) -> list[dict[str, Any]]:
    return [m for m in history(client, cid) if m["content"] == content]


def test_task_names_are_valid_deterministic_and_differ_per_due_time() -> None:
    at = datetime.fromisoformat("2031-05-06T07:08:09.123456+00:00")
    name = task_id("scheduled", "8a7a6f0e-3b5c-4a3e-9d1e-0c2b4f6a8e10", at)
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,500}", name), name
    assert name == task_id("scheduled", "8a7a6f0e-3b5c-4a3e-9d1e-0c2b4f6a8e10", at.astimezone())
    assert name != task_id("scheduled", "8a7a6f0e-3b5c-4a3e-9d1e-0c2b4f6a8e10", at + timedelta(microseconds=1))
    assert name != task_id("expiry", "8a7a6f0e-3b5c-4a3e-9d1e-0c2b4f6a8e10", at)


def test_a_scheduled_message_fires_through_cloud_tasks_once_even_when_delivered_twice(
    gateway: RunningServer, tasks_client: tasks_v2.CloudTasksClient, cloud_tasks_emulator: Emulator
) -> None:
    alice, bob = gateway.client(), gateway.client()
    cid = alice.direct_with(bob)["id"]
    due = utcnow() + timedelta(seconds=3)
    item = scheduled_ok(alice, cid, due, "via cloud tasks")
    scheduler = scheduler_of(gateway)

    [task] = queued(tasks_client, item["id"])  # one named task per scheduled message
    assert task.name == scheduler.task_name("scheduled", item["id"], parse(item["scheduled_at"]))
    request = task.http_request
    assert request.url == f"{gateway.url}{BASE}/tasks/scheduled/{item['id']}"
    assert request.http_method == tasks_v2.HttpMethod.POST
    assert request.headers["X-Whispr-Tasks-Secret"] == SECRET
    assert request.oidc_token.service_account_email == INVOKER
    assert request.oidc_token.audience == gateway.url
    assert task.schedule_time == due + DISPATCH_MARGIN

    # Delivered twice: a second task with the same target (Cloud Tasks is at-least-once), and
    # the port asked again for the same item and time (a retried enqueue: ALREADY_EXISTS in
    # Cloud Tasks; the emulator queues a same-named task, i.e. a third delivery).
    tasks_client.create_task(
        parent=TASKS_QUEUE,
        task=tasks_v2.Task(
            name=f"{TASKS_QUEUE}/tasks/redelivery-{item['id']}", schedule_time=task.schedule_time, http_request=request
        ),
    )
    scheduler.schedule("scheduled", item["id"], parse(item["scheduled_at"]))
    assert len(queued(tasks_client, item["id"])) == 3

    assert not contents(bob, cid, "via cloud tasks")  # not before its time
    message = wait_for(lambda: contents(bob, cid, "via cloud tasks"), what="the scheduled message")[0]
    assert parse(message["sent_at"]) >= due
    drained(tasks_client, cloud_tasks_emulator, item["id"])  # all three were delivered and answered 2xx
    assert len(contents(bob, cid, "via cloud tasks")) == 1
    assert len(contents(alice, cid, "via cloud tasks")) == 1
    stored = row(gateway.services.db, item["id"])
    assert stored["status"] == "sent" and stored["message_id"] == message["id"]
    listed = alice.get("/messages/scheduled", params={"status": "sent"}).json()
    assert [s["message_id"] for s in listed if s["id"] == item["id"]] == [message["id"]]

    # the target called once more by hand: nothing to do
    again = httpx.post(request.url, headers={"X-Whispr-Tasks-Secret": SECRET})
    assert again.status_code == 200 and again.json()["data"]["result"] == "skipped"
    assert len(contents(bob, cid, "via cloud tasks")) == 1


def test_a_moved_message_fires_at_its_new_time_and_a_cancelled_one_never(
    gateway: RunningServer, tasks_client: tasks_v2.CloudTasksClient, cloud_tasks_emulator: Emulator
) -> None:
    alice, bob = gateway.client(), gateway.client()
    cid = alice.direct_with(bob)["id"]
    first_due = utcnow() + timedelta(seconds=2)
    moved = scheduled_ok(alice, cid, first_due, "moved later")
    cancelled = scheduled_ok(alice, cid, first_due, "cancelled")
    new_due = first_due + timedelta(seconds=2)
    patched = alice.patch(f"/messages/scheduled/{moved['id']}", {"scheduled_at": iso(new_due)})
    assert patched.status_code == 200, patched.text
    assert alice.delete(f"/messages/scheduled/{cancelled['id']}").status_code == 200

    scheduler = scheduler_of(gateway)
    names = {t.name for t in queued(tasks_client, moved["id"])}
    assert scheduler.task_name("scheduled", moved["id"], new_due) in names  # a new task for the new time
    # In Cloud Tasks the old time's task is deleted now. The emulator has no DeleteTask: here it
    # stays, fires at the old time, and must send nothing (as a task whose delete failed would).
    message = wait_for(lambda: contents(bob, cid, "moved later"), what="the moved message")[0]
    assert parse(message["sent_at"]) >= new_due
    drained(tasks_client, cloud_tasks_emulator, moved["id"], cancelled["id"])
    assert len(contents(bob, cid, "moved later")) == 1
    assert contents(bob, cid, "cancelled") == []
    assert row(gateway.services.db, cancelled["id"])["status"] == "cancelled"


def test_an_ephemeral_message_expires_through_a_cloud_task(
    gateway: RunningServer, tasks_client: tasks_v2.CloudTasksClient, cloud_tasks_emulator: Emulator
) -> None:
    alice, bob = gateway.client(), gateway.client()
    cid = alice.direct_with(bob)["id"]
    # the shortest lifetime is an hour: send it "an hour ago, less 2 s" by the service clock
    offset = timedelta(seconds=3600 - 2)
    gateway.services.clock = lambda: utcnow() - offset
    try:
        sent = alice.send(cid, "self-destructs", expires_in_seconds=3600)
    finally:
        gateway.services.clock = utcnow
    expires_at = parse(sent["expires_at"])
    [task] = queued(tasks_client, sent["id"])
    assert task.name == scheduler_of(gateway).task_name("expiry", sent["id"], expires_at)
    assert task.http_request.url == f"{gateway.url}{BASE}/tasks/expire"
    assert bob.get(f"/messages/{sent['id']}").json()["data"]["content"] == "self-destructs"

    wait_for(lambda: bob.get(f"/messages/{sent['id']}").status_code == 404, what="the expiry")
    assert utcnow() >= expires_at
    for reader in (alice, bob):
        assert_error(reader.get(f"/messages/{sent['id']}"), 404, "message_not_found")
        assert contents(reader, cid, "self-destructs") == []
    drained(tasks_client, cloud_tasks_emulator, sent["id"])


def test_beyond_the_horizon_nothing_is_enqueued_until_the_sweep_finds_it_in_range(
    pg_url: str, key_path: str, cloud_tasks_emulator: Emulator, tasks_client: tasks_v2.CloudTasksClient
) -> None:
    """Cloud Tasks takes tasks at most 30 days ahead; here the horizon is 2 s to watch it work."""
    url = fresh_database(pg_url, "whispr_cloud_tasks_horizon", key_path)
    port = free_port()
    settings = tasks_settings(url, key_path, cloud_tasks_emulator, port, tasks_horizon_seconds=2.0)
    with serve(settings, port) as far:
        alice, bob = far.client(), far.client()
        cid = alice.direct_with(bob)["id"]
        due = utcnow() + timedelta(seconds=6)
        item = scheduled_ok(alice, cid, due, "from beyond")
        assert queued(tasks_client, item["id"]) == []  # too far ahead: not enqueued

        def sweep() -> dict[str, int]:
            response = httpx.post(f"{far.url}{BASE}/tasks/sweep", headers={"X-Whispr-Tasks-Secret": SECRET})
            assert response.status_code == 200, response.text
            return dict(response.json()["data"])

        assert sweep()["enqueued"] == 0  # still beyond the horizon
        assert queued(tasks_client, item["id"]) == []
        time.sleep(max(0.0, (due - timedelta(seconds=1.5) - utcnow()).total_seconds()))
        swept = sweep()
        assert swept["enqueued"] == 1 and swept["sent"] == 0
        [task] = queued(tasks_client, item["id"])
        assert task.name == scheduler_of(far).task_name("scheduled", item["id"], due)
        assert sweep()["enqueued"] == 1  # again: the same name (ALREADY_EXISTS in Cloud Tasks)

        assert not contents(bob, cid, "from beyond")
        message = wait_for(lambda: contents(bob, cid, "from beyond"), what="the message from beyond")[0]
        assert parse(message["sent_at"]) >= due
        drained(tasks_client, cloud_tasks_emulator, item["id"])
        assert len(contents(bob, cid, "from beyond")) == 1


def test_misconfigured_cloud_tasks_fail_at_start(pg_url: str, key_path: str, cloud_tasks_emulator: Emulator) -> None:
    from shared.bootstrap import build_services

    good = tasks_settings(pg_url, key_path, cloud_tasks_emulator, 1)
    for bad in ({"tasks_queue": ""}, {"tasks_queue": "messaging-scheduled"}, {"tasks_target_url": ""}):
        with pytest.raises(ValueError, match="WHISPR_TASKS_"):
            build_services(dataclasses.replace(good, **bad))


def test_with_cloud_tasks_unreachable_scheduling_still_succeeds_and_the_sweep_sends_it(
    pg_url: str, key_path: str, cloud_tasks_emulator: Emulator
) -> None:
    url = fresh_database(pg_url, "whispr_cloud_tasks_down", key_path)
    port = free_port()
    nowhere = dataclasses.replace(cloud_tasks_emulator, host=f"127.0.0.1:{free_port()}")  # nothing listens
    with serve(tasks_settings(url, key_path, nowhere, port), port) as server:
        alice, bob = server.client(), server.client()
        cid = alice.direct_with(bob)["id"]
        due = utcnow() + timedelta(seconds=1.5)
        began = time.monotonic()
        item = scheduled_ok(alice, cid, due, "despite the outage")  # committed; enqueueing failed, logged
        assert time.monotonic() - began < 5
        time.sleep(max(0.0, (due - utcnow()).total_seconds()) + 0.1)
        swept = httpx.post(f"{server.url}{BASE}/tasks/sweep", headers={"X-Whispr-Tasks-Secret": SECRET})
        assert swept.status_code == 200 and swept.json()["data"]["sent"] == 1
        assert len(contents(bob, cid, "despite the outage")) == 1
        assert row(server.services.db, item["id"])["status"] == "sent"
