"""Cloud Function `pins`: the pins routes of the route table (see shared/http/routes.py).

Run alone: functions-framework --asgi --source functions/pins/main.py --target pins
"""

import functions_framework.aio

from shared.http.function import resource_function

pins = functions_framework.aio.http(resource_function("pins"))
