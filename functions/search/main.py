"""Cloud Function `search`: the search routes of the route table (see shared/http/routes.py).

Run alone: functions-framework --asgi --source functions/search/main.py --target search
"""

import functions_framework.aio

from shared.http.function import resource_function

search = functions_framework.aio.http(resource_function("search"))
