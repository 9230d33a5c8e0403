"""Cloud Function `tasks`: the task targets of the route table (see shared/http/routes.py), called
by Cloud Tasks at a scheduled message's due time or an ephemeral message's expiry, and by Cloud
Scheduler for the periodic sweep. Not for clients: the handlers require WHISPR_TASKS_SECRET.

Run alone: functions-framework --asgi --source functions/tasks/main.py --target tasks
"""

import functions_framework.aio

from shared.http.function import resource_function

tasks = functions_framework.aio.http(resource_function("tasks"))
