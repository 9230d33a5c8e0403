# Whispr messaging service on Google Cloud.
#
# What goes where (docs/deployment.md explains each piece):
#   functions.tf  Cloud Functions gen2, one per entry of var.functions (generated from the route table)
#   run.tf        Cloud Run: WebSocket relay, gRPC shim, migration job; Artifact Registry
#   gateway.tf    API Gateway in front of the public functions
#   pubsub.tf     event topics, dead letters, push subscriptions from sibling services
#   tasks.tf      Cloud Tasks queue for scheduled messages, Cloud Scheduler sweepers
#   sql.tf        Cloud SQL PostgreSQL 15 on a private IP, its secrets
#   firestore.tf  Firestore (native mode) for presence and device sessions
#   network.tf    VPC, private services access, Serverless VPC Access connector
#   iam.tf        one service account per component, least privilege
#   monitoring.tf uptime check and alert policies

terraform {
  required_version = ">= 1.6"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 7.0"
    }
    google-beta = {
      source  = "hashicorp/google-beta"
      version = "~> 7.0"
    }
    random = {
      source  = "hashicorp/random"
      version = "~> 3.6"
    }
  }

  # State lives in a GCS bucket given at init time:
  #   terraform init -backend-config="bucket=<state-bucket>" -backend-config="prefix=whispr-messaging"
  backend "gcs" {}
}

provider "google" {
  project = var.project
  region  = var.region
}

provider "google-beta" {
  project = var.project
  region  = var.region
}

data "google_project" "this" {
  project_id = var.project
}

locals {
  labels = merge({ app = "whispr", service = "messaging", managed-by = "terraform" }, var.labels)

  # The REST base path every function serves (shared/http/openapi.py); task routes too.
  api_base_path = "/messaging/api/v1"

  # Cloud Run URLs are deterministic (https://SERVICE-PROJECT_NUMBER.REGION.run.app); using
  # them where a resource would otherwise refer to itself (a function that enqueues tasks for
  # the `tasks` function) avoids dependency cycles.
  run_url_suffix = "${data.google_project.this.number}.${var.region}.run.app"
  tasks_url      = "https://tasks-${local.run_url_suffix}"

  public_functions    = { for name, fn in var.functions : name => fn if fn.public }
  internal_functions  = { for name, fn in var.functions : name => fn if !fn.public }
  has_tasks_function  = contains(keys(var.functions), "tasks")
  has_events_function = contains(keys(var.functions), "events")

  image_repository = "${var.region}-docker.pkg.dev/${var.project}/${google_artifact_registry_repository.images.repository_id}"
  relay_image      = "${local.image_repository}/relay:${var.relay_image_tag}"
  grpc_image       = "${local.image_repository}/grpc:${var.grpc_image_tag}"

  # Configuration every runtime component gets (the core is the same everywhere). Secrets are
  # not here: they come from Secret Manager (see secret_env below, sql.tf and tasks.tf).
  common_env = {
    WHISPR_ENV                         = "production" # refuses unsafe settings at start (docs/configuration.md)
    WHISPR_RATE_LIMITER                = "sql"        # one budget across instances (docs/decisions.md)
    WHISPR_LOG_LEVEL                   = var.log_level
    WHISPR_GCP_PROJECT                 = var.project
    WHISPR_EVENT_BUS                   = "pubsub"
    WHISPR_PUBSUB_CONVERSATION_TOPIC   = google_pubsub_topic.conversation_events.name
    WHISPR_PUBSUB_DOMAIN_TOPIC         = google_pubsub_topic.domain_events.name
    WHISPR_STATE_STORE                 = "firestore"
    WHISPR_FIRESTORE_DATABASE          = google_firestore_database.state.name
    WHISPR_SCHEDULER                   = "cloudtasks"
    WHISPR_TASKS_QUEUE                 = google_cloud_tasks_queue.scheduled.id
    WHISPR_TASKS_TARGET_URL            = local.tasks_url
    WHISPR_TASKS_INVOKER_EMAIL         = google_service_account.sa["invoker"].email
    JWT_JWKS_URL                       = var.jwt_jwks_url
    JWT_ISSUER                         = var.jwt_issuer
    JWT_AUDIENCE                       = var.jwt_audience
    WHISPR_CORS_ORIGINS                = var.cors_origins
    USER_SERVICE_GRPC_ENDPOINT         = var.user_service_grpc_endpoint
    MEDIA_SERVICE_GRPC_ENDPOINT        = var.media_service_grpc_endpoint
    NOTIFICATION_SERVICE_GRPC_ENDPOINT = var.notification_service_grpc_endpoint
    # sibling calls carry the component's ID token (Cloud Run IAM on the siblings: iam.tf)
    WHISPR_SIBLING_AUTH                  = var.sibling_auth
    WHISPR_USER_SERVICE_AUDIENCE         = lookup(var.sibling_audiences, "user", "")
    WHISPR_MEDIA_SERVICE_AUDIENCE        = lookup(var.sibling_audiences, "media", "")
    WHISPR_NOTIFICATION_SERVICE_AUDIENCE = lookup(var.sibling_audiences, "notification", "")
  }

  # Environment variable -> Secret Manager secret id, for every runtime component.
  secret_env = {
    DATABASE_URL        = google_secret_manager_secret.database_url.secret_id
    WHISPR_TASKS_SECRET = google_secret_manager_secret.tasks_secret.secret_id
  }
}

resource "google_project_service" "apis" {
  for_each = toset([
    "apigateway.googleapis.com",
    "artifactregistry.googleapis.com",
    "cloudbuild.googleapis.com",
    "cloudfunctions.googleapis.com",
    "cloudscheduler.googleapis.com",
    "cloudtasks.googleapis.com",
    "compute.googleapis.com",
    "firestore.googleapis.com",
    "iam.googleapis.com",
    "logging.googleapis.com",
    "monitoring.googleapis.com",
    "pubsub.googleapis.com",
    "run.googleapis.com",
    "secretmanager.googleapis.com",
    "servicecontrol.googleapis.com",
    "servicemanagement.googleapis.com",
    "servicenetworking.googleapis.com",
    "sqladmin.googleapis.com",
    "vpcaccess.googleapis.com",
  ])

  service            = each.value
  disable_on_destroy = false
}

# Warn (not fail) while the internal functions are missing: without `tasks` there are no
# sweeper jobs, without `events` no subscriptions to sibling topics.
check "internal_functions_deployed" {
  assert {
    condition     = local.has_tasks_function && local.has_events_function
    error_message = "functions.auto.tfvars.json has no `tasks` and/or `events` function: sweepers and sibling event subscriptions are not created. Add functions/tasks/main.py and functions/events/main.py, then run: python -m shared.devtools.export_routes terraform/functions.auto.tfvars.json"
  }
}
