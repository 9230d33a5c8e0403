"""Cloud Function `messages`: the messages routes of the route table (see shared/http/routes.py).

Run alone: functions-framework --asgi --source functions/messages/main.py --target messages
"""

import functions_framework.aio

from shared.http.function import resource_function

messages = functions_framework.aio.http(resource_function("messages"))
