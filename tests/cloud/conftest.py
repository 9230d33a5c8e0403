"""The official emulators (and the Cloud Tasks emulator from PyPI), started once for the cloud
adapter tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from shared.devtools.emulators import Emulator, start_cloud_tasks, start_firestore, start_pubsub

TASKS_QUEUE = "projects/whispr-test/locations/europe-west1/queues/messaging-scheduled"


@contextmanager
def _running(emulator: Emulator, variable: str) -> Iterator[Emulator]:
    """The emulator with the client libraries' environment variable pointing at it."""
    previous = os.environ.get(variable)
    os.environ[variable] = emulator.host
    try:
        yield emulator
    finally:
        emulator.stop()
        if previous is None:
            os.environ.pop(variable, None)
        else:
            os.environ[variable] = previous


@pytest.fixture(scope="session")
def pubsub_emulator() -> Iterator[Emulator]:
    with _running(start_pubsub(), "PUBSUB_EMULATOR_HOST") as emulator:
        yield emulator


@pytest.fixture(scope="session")
def firestore_emulator() -> Iterator[Emulator]:
    with _running(start_firestore(), "FIRESTORE_EMULATOR_HOST") as emulator:
        yield emulator


@pytest.fixture(scope="session")
def cloud_tasks_emulator() -> Iterator[Emulator]:
    """gcloud-tasks-emulator with TASKS_QUEUE created; tests give clients its host explicitly
    (WHISPR_TASKS_EMULATOR_HOST in settings): the Cloud Tasks client reads no emulator variable."""
    emulator = start_cloud_tasks(TASKS_QUEUE)
    try:
        yield emulator
    finally:
        emulator.stop()
