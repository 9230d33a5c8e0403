"""Cloud Function `reports`: the reports routes of the route table (see shared/http/routes.py).

Run alone: functions-framework --asgi --source functions/reports/main.py --target reports
"""

import functions_framework.aio

from shared.http.function import resource_function

reports = functions_framework.aio.http(resource_function("reports"))
