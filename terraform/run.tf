# Cloud Run: the WebSocket relay, the gRPC shim, and the migration job (all from images
# built by cloudbuild.yaml and pushed to this repository).

# Metrics: the service's Prometheus metrics (/metrics, shared/telemetry/metrics.py) reach Cloud
# Monitoring through Google Cloud Managed Service for Prometheus. On Cloud Run that takes Google's
# sidecar in each instance: its default RunMonitoring configuration (no secret to mount) scrapes
# http://0.0.0.0:8080/metrics, inside the instance, every 30 s, and writes the samples with the
# service account's roles/monitoring.metricWriter (iam.tf). Both services serve /metrics on
# WHISPR_METRICS_PORT, set to that port, and take requests on another one: Cloud Run routes
# requests to the ingress (container) port only, so /metrics is never reachable from outside
# (the relay's public port does not answer it). Functions cannot be scraped: docs/operations.md,
# "Metrics".
locals {
  prometheus_scrape_port = 8080
  relay_port             = 8000
}

resource "google_artifact_registry_repository" "images" {
  repository_id = var.artifact_repository
  location      = var.region
  format        = "DOCKER"
  description   = "Whispr messaging images (relay, grpc)"
  labels        = local.labels

  cleanup_policies {
    id     = "keep-recent"
    action = "KEEP"
    most_recent_versions {
      keep_count = 20
    }
  }

  depends_on = [google_project_service.apis]
}

# ---------------------------------------------------------------------------
# Relay: holds client WebSockets (Phoenix Channels protocol), follows the conversation
# events topic through its own per-instance subscription. Public: it authenticates the
# token in the socket URL itself.
# ---------------------------------------------------------------------------

resource "google_cloud_run_v2_service" "relay" {
  name                = "messaging-relay"
  location            = var.region
  ingress             = "INGRESS_TRAFFIC_ALL"
  deletion_protection = false
  labels              = local.labels

  template {
    service_account                  = google_service_account.sa["relay"].email
    session_affinity                 = true
    timeout                          = "${var.relay_timeout_seconds}s"
    max_instance_request_concurrency = var.relay_concurrency

    scaling {
      min_instance_count = var.relay_min_instances
      max_instance_count = var.relay_max_instances
    }

    vpc_access {
      connector = google_vpc_access_connector.serverless.id
      egress    = "PRIVATE_RANGES_ONLY"
    }

    containers {
      name  = "relay"
      image = local.relay_image

      ports {
        container_port = local.relay_port
      }

      resources {
        limits = {
          cpu    = var.relay_cpu
          memory = var.relay_memory
        }
        # The relay pulls events and heartbeats sockets between requests: CPU always allocated.
        cpu_idle          = false
        startup_cpu_boost = true
      }

      dynamic "env" {
        for_each = merge(local.common_env, {
          WHISPR_COMPONENT = "relay"
          WHISPR_PORT      = tostring(local.relay_port)
          # /metrics apart from the public port, where the Managed Prometheus sidecar scrapes it
          WHISPR_METRICS_PORT = tostring(local.prometheus_scrape_port)
          # the client's address is the X-Forwarded-For entry Cloud Run's front end appended
          WHISPR_TRUSTED_PROXY_HOPS = "1"
          # SIGTERM: sockets told to reconnect elsewhere within Cloud Run's 10 s grace
          WHISPR_DRAIN_SECONDS = tostring(var.relay_drain_seconds)
        })
        content {
          name  = env.key
          value = env.value
        }
      }

      dynamic "env" {
        for_each = local.secret_env
        content {
          name = env.key
          value_source {
            secret_key_ref {
              secret  = env.value
              version = "latest"
            }
          }
        }
      }

      # Readiness over HTTP: an instance gets traffic once its store and bus answer
      # (/health/ready, shared/app/health.py), and is restarted if it stops serving.
      startup_probe {
        http_get {
          path = "/messaging/api/v1/health/ready"
          port = local.relay_port
        }
        period_seconds    = 2
        timeout_seconds   = 2
        failure_threshold = 30
      }

      liveness_probe {
        http_get {
          path = "/messaging/api/v1/health"
          port = local.relay_port
        }
        period_seconds    = 30
        timeout_seconds   = 5
        failure_threshold = 3
      }
    }

    # Managed Prometheus sidecar (see the top of this file), started once the relay is ready.
    containers {
      name       = "prometheus"
      image      = var.prometheus_sidecar_image
      depends_on = ["relay"]

      resources {
        limits = {
          cpu    = "1" # below 1 vCPU Cloud Run requires request-based billing
          memory = "512Mi"
        }
        cpu_idle = false # as the relay's: scrapes between requests are not throttled
      }
    }
  }

  depends_on = [
    google_project_service.apis,
    google_secret_manager_secret_iam_member.runtime,
    google_secret_manager_secret_version.database_url,
    google_secret_manager_secret_version.tasks_secret,
  ]
}

resource "google_cloud_run_v2_service_iam_member" "relay_public" {
  project  = var.project
  location = var.region
  name     = google_cloud_run_v2_service.relay.name
  role     = "roles/run.invoker"
  member   = "allUsers"
}

# ---------------------------------------------------------------------------
# gRPC shim: grpc.aio serving protos/whispr/messaging/v1 over HTTP/2 end-to-end (h2c to the
# container), for sibling services only.
# ---------------------------------------------------------------------------

resource "google_cloud_run_v2_service" "grpc" {
  name                = "messaging-grpc"
  location            = var.region
  ingress             = "INGRESS_TRAFFIC_ALL"
  deletion_protection = false
  labels              = local.labels

  template {
    service_account                  = google_service_account.sa["grpc"].email
    timeout                          = "300s"
    max_instance_request_concurrency = 250

    scaling {
      min_instance_count = var.grpc_min_instances
      max_instance_count = var.grpc_max_instances
    }

    vpc_access {
      connector = google_vpc_access_connector.serverless.id
      egress    = "PRIVATE_RANGES_ONLY"
    }

    containers {
      name  = "grpc"
      image = local.grpc_image

      # Named h2c: Cloud Run forwards HTTP/2 cleartext to the container (gRPC needs HTTP/2).
      ports {
        name           = "h2c"
        container_port = 9090
      }

      resources {
        limits = {
          cpu    = "1"
          memory = "1Gi"
        }
        startup_cpu_boost = true
      }

      dynamic "env" {
        for_each = merge(local.common_env, {
          WHISPR_COMPONENT     = "grpc"
          WHISPR_GRPC_AUDIENCE = var.grpc_caller_audience
          # /metrics over HTTP beside gRPC, where the Managed Prometheus sidecar scrapes it
          WHISPR_METRICS_PORT = tostring(local.prometheus_scrape_port)
        })
        content {
          name  = env.key
          value = env.value
        }
      }

      dynamic "env" {
        for_each = merge(local.secret_env, {
          WHISPR_GRPC_SHARED_SECRET = google_secret_manager_secret.grpc_shared_secret.secret_id
        })
        content {
          name = env.key
          value_source {
            secret_key_ref {
              secret  = env.value
              version = "latest"
            }
          }
        }
      }

      # The standard gRPC health service (grpc.health.v1).
      startup_probe {
        grpc {
          port = 9090
        }
        period_seconds    = 2
        failure_threshold = 30
      }

      liveness_probe {
        grpc {
          port = 9090
        }
        period_seconds = 30
      }
    }

    # Managed Prometheus sidecar (see the top of this file), started once the shim is serving.
    containers {
      name       = "prometheus"
      image      = var.prometheus_sidecar_image
      depends_on = ["grpc"]

      resources {
        limits = {
          cpu    = "1" # below 1 vCPU Cloud Run requires request-based billing
          memory = "512Mi"
        }
      }
    }
  }

  depends_on = [
    google_project_service.apis,
    google_secret_manager_secret_iam_member.runtime,
    google_secret_manager_secret_iam_member.grpc_shared_secret,
    google_secret_manager_secret_version.database_url,
    google_secret_manager_secret_version.tasks_secret,
    google_secret_manager_secret_version.grpc_shared_secret,
  ]
}

resource "google_cloud_run_v2_service_iam_member" "grpc_invokers" {
  for_each = toset(var.grpc_invoker_members)

  project  = var.project
  location = var.region
  name     = google_cloud_run_v2_service.grpc.name
  role     = "roles/run.invoker"
  member   = each.value
}

# ---------------------------------------------------------------------------
# Migrations: `whispr-messaging migrate` (Alembic) as a Cloud Run job, run by Cloud Build
# before the new code is rolled out.
# ---------------------------------------------------------------------------

resource "google_cloud_run_v2_job" "migrate" {
  name                = "messaging-migrate"
  location            = var.region
  deletion_protection = false
  labels              = local.labels

  template {
    task_count = 1

    template {
      service_account = google_service_account.sa["migrate"].email
      max_retries     = 1
      timeout         = "900s"

      vpc_access {
        connector = google_vpc_access_connector.serverless.id
        egress    = "PRIVATE_RANGES_ONLY"
      }

      containers {
        image   = local.relay_image
        command = ["whispr-messaging"]
        args    = ["migrate"]

        env {
          name  = "WHISPR_LOG_LEVEL"
          value = var.log_level
        }

        env {
          name = "DATABASE_URL"
          value_source {
            secret_key_ref {
              secret  = google_secret_manager_secret.database_url.secret_id
              version = "latest"
            }
          }
        }
      }
    }
  }

  depends_on = [
    google_project_service.apis,
    google_secret_manager_secret_iam_member.migrate,
    google_secret_manager_secret_version.database_url,
  ]
}
