"""Cloud Function `conversations`: the conversations routes of the route table (see shared/http/routes.py).

Run alone: functions-framework --asgi --source functions/conversations/main.py --target conversations
"""

import functions_framework.aio

from shared.http.function import resource_function

conversations = functions_framework.aio.http(resource_function("conversations"))
