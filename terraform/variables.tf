# ---------------------------------------------------------------------------
# Where
# ---------------------------------------------------------------------------

variable "project" {
  description = "Google Cloud project id that hosts the messaging service."
  type        = string
}

variable "region" {
  description = "Region for every regional resource (functions, Cloud Run, SQL, tasks, gateway)."
  type        = string
  default     = "europe-west1"
}

variable "firestore_location" {
  description = "Firestore location id (a region such as europe-west1, or a multi-region such as eur3). Empty: the region."
  type        = string
  default     = ""
}

variable "labels" {
  description = "Extra labels added to every labelled resource."
  type        = map(string)
  default     = {}
}

# ---------------------------------------------------------------------------
# What to deploy (set by Cloud Build)
# ---------------------------------------------------------------------------

variable "functions" {
  description = <<-EOT
    The Cloud Functions to deploy, keyed by name. GENERATED from the route table into
    functions.auto.tfvars.json by `python -m shared.devtools.export_routes
    terraform/functions.auto.tfvars.json`; do not edit by hand (a test fails on drift).
    public = true: behind the API gateway; false: invoked only by Google services with OIDC.
  EOT
  type = map(object({
    source      = string
    entry_point = string
    public      = bool
    description = string
    routes = list(object({
      method        = string
      path          = string
      authenticated = bool
    }))
  }))
}

variable "source_archive_path" {
  description = "Zip of the repository root (requirements.txt, constraints.txt, functions/, shared/, protos/) that every function is built from."
  type        = string
  default     = "../build/function-source.zip"
}

variable "source_version" {
  description = "Version of the source archive (the commit SHA in Cloud Build); part of the object name so that a new commit redeploys."
  type        = string
}

variable "relay_image_tag" {
  description = "Tag of the relay image in Artifact Registry (the commit SHA in Cloud Build)."
  type        = string
}

variable "grpc_image_tag" {
  description = "Tag of the gRPC shim image in Artifact Registry (the commit SHA in Cloud Build)."
  type        = string
}

variable "artifact_repository" {
  description = "Artifact Registry Docker repository for the relay and gRPC images."
  type        = string
  default     = "whispr-messaging"
}

variable "openapi_path" {
  description = <<-EOT
    The API Gateway OpenAPI document (Swagger 2.0 with x-google-backend), generated from the
    route table. It is a Terraform template: `$${backends["<function>"]}` is replaced by that
    function's HTTPS URL. Relative paths are relative to the terraform/ directory.
  EOT
  type        = string
  default     = "../build/openapi-gateway.yaml"
}

# ---------------------------------------------------------------------------
# Functions
# ---------------------------------------------------------------------------

variable "functions_runtime" {
  description = "Cloud Functions runtime (the Python the project is tested on)."
  type        = string
  default     = "python311"
}

variable "function_memory" {
  description = "Memory per function instance."
  type        = string
  default     = "512Mi"
}

variable "function_cpu" {
  description = "vCPU per function instance (gen2 allows concurrency > 1 only with at least 1 vCPU)."
  type        = string
  default     = "1"
}

variable "function_concurrency" {
  description = "Concurrent requests per function instance."
  type        = number
  default     = 40
}

variable "function_min_instances" {
  description = "Warm instances per public function (0 lets them scale to zero)."
  type        = number
  default     = 0
}

variable "function_max_instances" {
  description = "Upper bound of instances per function (bounds PostgreSQL connections too)."
  type        = number
  default     = 50
}

variable "function_timeout_seconds" {
  description = "Request timeout of the functions."
  type        = number
  default     = 60
}

# ---------------------------------------------------------------------------
# Relay (WebSocket, Cloud Run)
# ---------------------------------------------------------------------------

variable "relay_min_instances" {
  description = "Relay instances kept running (sockets reconnect to a warm instance)."
  type        = number
  default     = 1
}

variable "relay_max_instances" {
  description = "Upper bound of relay instances."
  type        = number
  default     = 20
}

variable "relay_concurrency" {
  description = "Concurrent connections per relay instance (Cloud Run allows at most 1000)."
  type        = number
  default     = 1000
}

variable "relay_timeout_seconds" {
  description = "Longest a WebSocket lives before Cloud Run closes it; clients reconnect and catch up (max 3600)."
  type        = number
  default     = 3600
}

variable "relay_drain_seconds" {
  description = "On SIGTERM (scale-in, new revision) a relay instance tells its sockets to reconnect elsewhere over this window, then exits (WHISPR_DRAIN_SECONDS). Cloud Run kills the instance 10 s after SIGTERM, a grace it does not let you change: stay below it."
  type        = number
  default     = 5

  validation {
    condition     = var.relay_drain_seconds > 0 && var.relay_drain_seconds <= 8
    error_message = "relay_drain_seconds must be above 0 and at most 8: Cloud Run sends SIGKILL 10 s after SIGTERM, and the process needs the rest to exit."
  }
}

variable "relay_cpu" {
  description = "vCPU per relay instance."
  type        = string
  default     = "2"
}

variable "relay_memory" {
  description = "Memory per relay instance."
  type        = string
  default     = "2Gi"
}

# ---------------------------------------------------------------------------
# gRPC shim (Cloud Run, HTTP/2)
# ---------------------------------------------------------------------------

variable "grpc_min_instances" {
  description = "gRPC shim instances kept running."
  type        = number
  default     = 1
}

variable "grpc_max_instances" {
  description = "Upper bound of gRPC shim instances."
  type        = number
  default     = 10
}

variable "grpc_invoker_members" {
  description = "IAM members allowed to call the gRPC shim, e.g. [\"serviceAccount:user-service@whispr-user.iam.gserviceaccount.com\"]."
  type        = list(string)
  default     = []
}

variable "grpc_caller_audience" {
  description = "When set, the shim also accepts callers by a Google ID token with this audience (WHISPR_GRPC_AUDIENCE), besides the shared secret in metadata."
  type        = string
  default     = ""
}

# ---------------------------------------------------------------------------
# Application settings
# ---------------------------------------------------------------------------

variable "jwt_jwks_url" {
  description = "auth-service JWKS URL (ES256 access tokens)."
  type        = string

  validation {
    condition     = startswith(var.jwt_jwks_url, "https://")
    error_message = "jwt_jwks_url must be an https:// URL: without it the service would fall back to its local development key."
  }
}

variable "jwt_issuer" {
  description = "Expected `iss` of access tokens (required: WHISPR_ENV=production refuses to start without it)."
  type        = string

  validation {
    condition     = length(trimspace(var.jwt_issuer)) > 0
    error_message = "jwt_issuer is required: the service in production refuses tokens of any issuer."
  }
}

variable "jwt_audience" {
  description = "Expected `aud` of access tokens (required: WHISPR_ENV=production refuses to start without it)."
  type        = string

  validation {
    condition     = length(trimspace(var.jwt_audience)) > 0
    error_message = "jwt_audience is required: the service in production refuses tokens minted for any service."
  }
}

variable "cors_origins" {
  description = "Allowed browser origins, comma-separated (empty: none; the mobile client needs none)."
  type        = string
  default     = ""

  validation {
    condition     = !strcontains(var.cors_origins, "*")
    error_message = "cors_origins must list origins: the service in production refuses `*`."
  }
}

variable "log_level" {
  description = "Log level of every component."
  type        = string
  default     = "info"
}

variable "user_service_grpc_endpoint" {
  description = "user-service gRPC endpoint (host:port, or grpcs://host:443 for a Cloud Run service). Empty: the permissive local policy (not for production)."
  type        = string
  default     = ""
}

variable "media_service_grpc_endpoint" {
  description = "media-service gRPC endpoint (host:port)."
  type        = string
  default     = ""
}

variable "notification_service_grpc_endpoint" {
  description = "notification-service gRPC endpoint (host:port)."
  type        = string
  default     = ""
}

variable "sibling_auth" {
  description = "What calls to the sibling services carry (WHISPR_SIBLING_AUTH): `id_token`, a Google ID token of the calling component's service account, what siblings on Cloud Run behind IAM require; or `none`."
  type        = string
  default     = "id_token"

  validation {
    condition     = contains(["id_token", "none"], var.sibling_auth)
    error_message = "sibling_auth is id_token or none (the shared-secret mode, WHISPR_SIBLING_AUTH=secret, is for siblings outside Google Cloud)."
  }
}

variable "sibling_audiences" {
  description = "Audience of the ID tokens sent to each sibling, keyed user / media / notification (absent: the endpoint's https URL, Cloud Run's default audience)."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for key in keys(var.sibling_audiences) : contains(["user", "media", "notification"], key)])
    error_message = "sibling_audiences keys are user, media and notification."
  }
}

variable "sibling_run_services" {
  description = <<-EOT
    The siblings' Cloud Run services, keyed user / media / notification, e.g.
    { user = { project = "whispr-user", location = "europe-west1", name = "user-service" } }.
    Each component's service account is granted roles/run.invoker on them (the deployer needs
    run.services.setIamPolicy there). Empty: the sibling's owner grants the members of the
    `sibling_invoker_members` output instead.
  EOT
  type = map(object({
    project  = string
    location = string
    name     = string
  }))
  default = {}

  validation {
    condition     = alltrue([for key in keys(var.sibling_run_services) : contains(["user", "media", "notification"], key)])
    error_message = "sibling_run_services keys are user, media and notification."
  }
}

# ---------------------------------------------------------------------------
# Events from sibling services
# ---------------------------------------------------------------------------

variable "sibling_event_topics" {
  description = <<-EOT
    Sibling services' Pub/Sub topics pushed to the `events` function, keyed by a short name,
    e.g. { user = "projects/whispr-user/topics/user-events" }. The sibling grants this
    project's deployer roles/pubsub.subscriber on its topic so the subscription can attach.
  EOT
  type        = map(string)
  default     = {}
}

variable "event_max_delivery_attempts" {
  description = "Deliveries of a sibling event before it goes to the dead-letter topic (5 to 100)."
  type        = number
  default     = 10
}

# ---------------------------------------------------------------------------
# Cloud Tasks and sweepers
# ---------------------------------------------------------------------------

variable "tasks_max_dispatches_per_second" {
  description = "Rate at which due scheduled messages and expiries are fired."
  type        = number
  default     = 200
}

variable "tasks_max_concurrent_dispatches" {
  description = "Scheduled firings in flight at once."
  type        = number
  default     = 100
}

variable "sweeper_schedules" {
  description = "Cron schedule (UTC) per sweeper, keyed by its route under /tasks/ (e.g. sweep, expire, outbox)."
  type        = map(string)
  default = {
    sweep  = "* * * * *"
    expire = "*/5 * * * *"
    outbox = "* * * * *"
  }
}

variable "sweeper_default_schedule" {
  description = "Cron schedule (UTC) of a sweeper route not listed in sweeper_schedules."
  type        = string
  default     = "*/5 * * * *"
}

# ---------------------------------------------------------------------------
# Cloud SQL and network
# ---------------------------------------------------------------------------

variable "sql_tier" {
  description = "Cloud SQL machine tier."
  type        = string
  default     = "db-custom-2-7680"
}

variable "sql_availability_type" {
  description = "REGIONAL (high availability, production) or ZONAL."
  type        = string
  default     = "REGIONAL"
}

variable "sql_disk_size_gb" {
  description = "Initial disk size; grows automatically."
  type        = number
  default     = 20
}

variable "sql_max_connections" {
  description = "PostgreSQL max_connections; must cover every instance's pool (functions, relay, shim)."
  type        = number
  default     = 800
}

variable "sql_deletion_protection" {
  description = "Refuse to destroy the database instance."
  type        = bool
  default     = true
}

variable "vpc_connector_machine_type" {
  description = "Machine type of the VPC connector's instances (only database traffic goes through it)."
  type        = string
  default     = "e2-micro"
}

variable "vpc_connector_cidr" {
  description = "Unused /28 for the Serverless VPC Access connector."
  type        = string
  default     = "10.8.0.0/28"
}

# ---------------------------------------------------------------------------
# Monitoring
# ---------------------------------------------------------------------------

variable "alert_email" {
  description = "Where alerts go (empty: alert policies without a notification channel)."
  type        = string
  default     = ""
}

variable "alert_5xx_per_second" {
  description = "5xx responses per second, per Cloud Run service or function, that raise an alert."
  type        = number
  default     = 0.5
}

variable "alert_outbox_lag_seconds" {
  description = "Alert when the oldest unpublished outbox event is older than this (seconds)."
  type        = number
  default     = 120
}

variable "prometheus_sidecar_image" {
  description = "Google's Managed Service for Prometheus sidecar for Cloud Run (run.tf): it scrapes /metrics of the relay and the gRPC shim into Cloud Monitoring, where the PromQL alert policies read them. A released version, never :latest; pin by digest (`@sha256:...`) where policy asks for it."
  type        = string
  default     = "us-docker.pkg.dev/cloud-ops-agents-artifacts/cloud-run-gmp-sidecar/cloud-run-gmp-sidecar:1.2.0"

  validation {
    condition     = can(regex("^us-docker\\.pkg\\.dev/cloud-ops-agents-artifacts/cloud-run-gmp-sidecar/cloud-run-gmp-sidecar(:[0-9]+\\.[0-9]+\\.[0-9]+)?(@sha256:[0-9a-f]{64})?$", var.prometheus_sidecar_image)) && !endswith(var.prometheus_sidecar_image, "sidecar")
    error_message = "prometheus_sidecar_image must be Google's cloud-run-gmp-sidecar image with a version tag (1.2.0) and/or a digest."
  }
}
