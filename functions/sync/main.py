"""Cloud Function `sync`: the sync routes of the route table (see shared/http/routes.py).

Run alone: functions-framework --asgi --source functions/sync/main.py --target sync
"""

import functions_framework.aio

from shared.http.function import resource_function

sync = functions_framework.aio.http(resource_function("sync"))
