"""Cloud Function `drafts`: the drafts routes of the route table (see shared/http/routes.py).

Run alone: functions-framework --asgi --source functions/drafts/main.py --target drafts
"""

import functions_framework.aio

from shared.http.function import resource_function

drafts = functions_framework.aio.http(resource_function("drafts"))
