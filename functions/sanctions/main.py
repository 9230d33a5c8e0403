"""Cloud Function `sanctions`: the sanctions routes of the route table (see shared/http/routes.py).

Run alone: functions-framework --asgi --source functions/sanctions/main.py --target sanctions
"""

import functions_framework.aio

from shared.http.function import resource_function

sanctions = functions_framework.aio.http(resource_function("sanctions"))
