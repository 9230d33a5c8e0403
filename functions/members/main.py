"""Cloud Function `members`: the members routes of the route table (see shared/http/routes.py).

Run alone: functions-framework --asgi --source functions/members/main.py --target members
"""

import functions_framework.aio

from shared.http.function import resource_function

members = functions_framework.aio.http(resource_function("members"))
