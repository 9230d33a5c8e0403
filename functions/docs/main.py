"""Cloud Function `docs`: the docs routes of the route table (see shared/http/routes.py): the
OpenAPI document at /messaging/api/openapi.json and the docs page at /messaging/api/docs.

Run alone: functions-framework --asgi --source functions/docs/main.py --target docs
"""

import functions_framework.aio

from shared.http.function import resource_function

docs = functions_framework.aio.http(resource_function("docs"))
