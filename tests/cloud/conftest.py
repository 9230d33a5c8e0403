"""The official emulators (and the Cloud Tasks emulator from PyPI), started once for the cloud
adapter tests."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from shared.devtools.emulators import Emulator, start_cloud_tasks, start_firestore, start_pubsub

TASKS_QUEUE = "projects/whispr-test/locations/europe-west1/queues/messaging-scheduled"


@pytest.fixture(scope="session")
def pubsub_emulator() -> Iterator[Emulator]:
    emulator = start_pubsub()
    previous = os.environ.get("PUBSUB_EMULATOR_HOST")
    os.environ["PUBSUB_EMULATOR_HOST"] = emulator.host
    try:
        yield emulator
    finally:
        emulator.stop()
        if previous is None:
            os.environ.pop("PUBSUB_EMULATOR_HOST", None)
        else:
            os.environ["PUBSUB_EMULATOR_HOST"] = previous


@pytest.fixture(scope="session")
def firestore_emulator() -> Iterator[Emulator]:
    emulator = start_firestore()
    previous = os.environ.get("FIRESTORE_EMULATOR_HOST")
    os.environ["FIRESTORE_EMULATOR_HOST"] = emulator.host
    try:
        yield emulator
    finally:
        emulator.stop()
        if previous is None:
            os.environ.pop("FIRESTORE_EMULATOR_HOST", None)
        else:
            os.environ["FIRESTORE_EMULATOR_HOST"] = previous


@pytest.fixture(scope="session")
def cloud_tasks_emulator() -> Iterator[Emulator]:
    """gcloud-tasks-emulator with TASKS_QUEUE created; tests give clients its host explicitly
    (WHISPR_TASKS_EMULATOR_HOST in settings): the Cloud Tasks client reads no emulator variable."""
    emulator = start_cloud_tasks(TASKS_QUEUE)
    try:
        yield emulator
    finally:
        emulator.stop()
