"""Cloud Function `scheduled`: the scheduled-message routes of the route table (see shared/http/routes.py).

Run alone: functions-framework --asgi --source functions/scheduled/main.py --target scheduled
"""

import functions_framework.aio

from shared.http.function import resource_function

scheduled = functions_framework.aio.http(resource_function("scheduled"))
