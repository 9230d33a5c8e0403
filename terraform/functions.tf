# One Cloud Function (gen2) per entry of var.functions, which is generated from the route
# table (functions.auto.tfvars.json). Every function is built from the same archive of the
# repository root, so `shared/` is importable; GOOGLE_FUNCTION_SOURCE picks the file.

resource "google_storage_bucket" "sources" {
  name                        = "${var.project}-whispr-messaging-sources"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = true
  labels                      = local.labels

  versioning {
    enabled = true # an overwritten source archive can be restored (the lifecycle rule ages them out)
  }

  lifecycle_rule {
    condition {
      age = 30
    }
    action {
      type = "Delete"
    }
  }
}

resource "google_storage_bucket_object" "source" {
  name   = "function-source-${var.source_version}.zip"
  bucket = google_storage_bucket.sources.name
  source = var.source_archive_path
}

resource "google_cloudfunctions2_function" "fn" {
  for_each = var.functions

  name        = each.key
  location    = var.region
  description = each.value.description
  labels      = local.labels

  build_config {
    runtime         = var.functions_runtime
    entry_point     = each.value.entry_point
    service_account = google_service_account.sa["build"].id

    environment_variables = {
      GOOGLE_FUNCTION_SOURCE = each.value.source
    }

    source {
      storage_source {
        bucket = google_storage_bucket.sources.name
        object = google_storage_bucket_object.source.name
      }
    }
  }

  service_config {
    service_account_email            = each.value.public ? google_service_account.sa["api"].email : google_service_account.sa["worker"].email
    ingress_settings                 = each.value.public ? "ALLOW_ALL" : "ALLOW_INTERNAL_ONLY"
    all_traffic_on_latest_revision   = true
    available_memory                 = var.function_memory
    available_cpu                    = var.function_cpu
    max_instance_request_concurrency = var.function_concurrency
    min_instance_count               = each.value.public ? var.function_min_instances : 0
    max_instance_count               = var.function_max_instances
    timeout_seconds                  = var.function_timeout_seconds
    vpc_connector                    = google_vpc_access_connector.serverless.id
    vpc_connector_egress_settings    = "PRIVATE_RANGES_ONLY"

    environment_variables = merge(local.common_env, {
      # Small database pools: many instances share Cloud SQL's max_connections.
      WHISPR_COMPONENT = "function"
      # functions_framework.aio functions are served by the ASGI server.
      FUNCTION_USE_ASGI = "true"
      # The source root (/workspace) on sys.path, so `import shared` works from functions/<name>/.
      PYTHONPATH = "/workspace"
    })

    dynamic "secret_environment_variables" {
      for_each = local.secret_env
      content {
        key        = secret_environment_variables.key
        project_id = var.project
        secret     = secret_environment_variables.value
        version    = "latest"
      }
    }
  }

  depends_on = [
    google_project_service.apis,
    google_secret_manager_secret_iam_member.runtime,
    google_secret_manager_secret_version.database_url,
    google_secret_manager_secret_version.tasks_secret,
    google_project_iam_member.build,
  ]
}

# Who may invoke which function: the gateway the public ones, the invoker identity (Cloud
# Scheduler, Cloud Tasks) `tasks`, the Pub/Sub push identity `events`. Nobody else.
locals {
  function_invokers = merge(
    { for name, fn in local.public_functions : name => google_service_account.sa["gateway"].member },
    { for name, fn in local.internal_functions : name => google_service_account.sa["invoker"].member if name == "tasks" },
    { for name, fn in local.internal_functions : name => google_service_account.sa["push"].member if name == "events" },
  )
}

resource "google_cloud_run_v2_service_iam_member" "function_invoker" {
  for_each = local.function_invokers

  project  = var.project
  location = var.region
  name     = google_cloudfunctions2_function.fn[each.key].name
  role     = "roles/run.invoker"
  member   = each.value
}
