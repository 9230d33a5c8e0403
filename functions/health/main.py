"""Cloud Function `health`: the health routes of the route table (see shared/http/routes.py).

Run alone: functions-framework --asgi --source functions/health/main.py --target health
"""

import functions_framework.aio

from shared.http.function import resource_function

health = functions_framework.aio.http(resource_function("health"))
