"""Cloud Function `reactions`: the reactions routes of the route table (see shared/http/routes.py).

Run alone: functions-framework --asgi --source functions/reactions/main.py --target reactions
"""

import functions_framework.aio

from shared.http.function import resource_function

reactions = functions_framework.aio.http(resource_function("reactions"))
