# Cloud Tasks fires scheduled messages and message expiries at their time: HTTP tasks to the
# `tasks` function (POST /messaging/api/v1/tasks/scheduled/{scheduled_id}), with the invoker
# service account's OIDC token and the X-Whispr-Tasks-Secret header. A task can be at most
# 30 days ahead, so the periodic sweep picks up what comes within range.

resource "google_cloud_tasks_queue" "scheduled" {
  name     = "messaging-scheduled"
  location = var.region

  rate_limits {
    max_dispatches_per_second = var.tasks_max_dispatches_per_second
    max_concurrent_dispatches = var.tasks_max_concurrent_dispatches
  }

  # Firing is idempotent, so retrying is always safe.
  retry_config {
    max_attempts       = 20
    max_retry_duration = "86400s"
    min_backoff        = "1s"
    max_backoff        = "300s"
    max_doublings      = 8
  }

  stackdriver_logging_config {
    sampling_ratio = 0.1
  }

  depends_on = [google_project_service.apis]
}

# The shared secret the task targets require (WHISPR_TASKS_SECRET), on top of Cloud Run IAM.
resource "random_password" "tasks_secret" {
  length  = 48
  special = false
}

resource "google_secret_manager_secret" "tasks_secret" {
  secret_id = "messaging-tasks-secret"
  labels    = local.labels

  replication {
    auto {}
  }

  depends_on = [google_project_service.apis]
}

resource "google_secret_manager_secret_version" "tasks_secret" {
  secret      = google_secret_manager_secret.tasks_secret.id
  secret_data = random_password.tasks_secret.result
}

# Sweepers: every POST route of the `tasks` function without a path parameter (from the route
# table, via var.functions) is called on a schedule by Cloud Scheduler. Today: /tasks/sweep
# (send due scheduled messages, enqueue those within Cloud Tasks' range, expire due messages)
# and /tasks/expire; an outbox sweep route added to the table gets its job the same way.
locals {
  tasks_routes = local.has_tasks_function ? var.functions["tasks"].routes : []

  sweepers = {
    for route in local.tasks_routes :
    replace(trimprefix(route.path, "/tasks/"), "/", "-") => route.path
    if route.method == "POST" && !strcontains(route.path, "{")
  }
}

resource "google_cloud_scheduler_job" "sweeper" {
  for_each = local.sweepers

  name             = "messaging-${each.key}"
  region           = var.region
  description      = "Whispr messaging: POST ${each.value} on the tasks function"
  schedule         = lookup(var.sweeper_schedules, each.key, var.sweeper_default_schedule)
  time_zone        = "Etc/UTC"
  attempt_deadline = "300s"

  retry_config {
    retry_count = 0 # the next run comes soon enough, and every sweep is idempotent
  }

  http_target {
    http_method = "POST"
    uri         = "${google_cloudfunctions2_function.fn["tasks"].service_config[0].uri}${local.api_base_path}${each.value}"
    headers = {
      "Content-Type"          = "application/json"
      "X-Whispr-Tasks-Secret" = random_password.tasks_secret.result
    }
    body = base64encode("{}")

    oidc_token {
      service_account_email = google_service_account.sa["invoker"].email
      audience              = google_cloudfunctions2_function.fn["tasks"].service_config[0].uri
    }
  }

  depends_on = [google_project_service.apis]
}
