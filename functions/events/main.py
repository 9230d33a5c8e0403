"""Cloud Function `events`: sibling services' events (user.blocked, user.unblocked,
user.deleted, group.updated), pushed by Pub/Sub subscriptions with a dead-letter topic
(terraform/pubsub.tf) to its route of the route table (shared/http/routes.py, POST /events;
contract in docs/events.md). Not for clients: the handler requires WHISPR_TASKS_SECRET.

Run alone: functions-framework --asgi --source functions/events/main.py --target events
"""

import functions_framework.aio

from shared.http.function import resource_function

events = functions_framework.aio.http(resource_function("events"))
