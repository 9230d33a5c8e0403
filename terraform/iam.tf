# One service account per component, each with only what it uses.
#
#   build    builds the functions (Cloud Build on behalf of Cloud Functions)
#   api      runs the public REST functions
#   worker   runs the internal functions (`tasks`, `events`)
#   relay    runs the WebSocket relay
#   grpc     runs the gRPC shim
#   migrate  runs the migration job
#   gateway  API Gateway's identity towards the public functions
#   invoker  the OIDC identity of Cloud Scheduler jobs and Cloud Tasks tasks (calls `tasks`)
#   push     the OIDC identity of Pub/Sub push (calls `events`)

locals {
  service_accounts = {
    build   = "Whispr messaging: function builds"
    api     = "Whispr messaging: REST functions"
    worker  = "Whispr messaging: tasks and events functions"
    relay   = "Whispr messaging: WebSocket relay"
    grpc    = "Whispr messaging: gRPC shim"
    migrate = "Whispr messaging: database migrations"
    gateway = "Whispr messaging: API Gateway backend identity"
    invoker = "Whispr messaging: Cloud Scheduler and Cloud Tasks caller"
    push    = "Whispr messaging: Pub/Sub push caller"
  }

  # The components that run the core: same data-plane access.
  runtime = toset(["api", "worker", "relay", "grpc"])

  # Project-level roles (the only level these exist at). Firestore access is project-wide.
  project_roles = merge(
    {
      for pair in setproduct(local.runtime, [
        "roles/logging.logWriter",
        "roles/monitoring.metricWriter",
        "roles/cloudtrace.agent",
        "roles/datastore.user",
      ]) : "${pair[0]} ${pair[1]}" => { account = pair[0], role = pair[1] }
    },
    {
      "migrate roles/logging.logWriter" = { account = "migrate", role = "roles/logging.logWriter" }
    },
  )
}

resource "google_service_account" "sa" {
  for_each = local.service_accounts

  account_id   = "whispr-msg-${each.key}"
  display_name = each.value

  depends_on = [google_project_service.apis]
}

resource "google_project_iam_member" "runtime" {
  for_each = local.project_roles

  project = var.project
  role    = each.value.role
  member  = google_service_account.sa[each.value.account].member
}

# ---------------------------------------------------------------------------
# Builds
# ---------------------------------------------------------------------------

resource "google_project_iam_member" "build" {
  for_each = toset([
    "roles/logging.logWriter",
    "roles/artifactregistry.createOnPushWriter", # the gcf-artifacts repository is created on first push
  ])

  project = var.project
  role    = each.value
  member  = google_service_account.sa["build"].member
}

resource "google_storage_bucket_iam_member" "build_reads_sources" {
  bucket = google_storage_bucket.sources.name
  role   = "roles/storage.objectViewer"
  member = google_service_account.sa["build"].member
}

# ---------------------------------------------------------------------------
# Secrets
# ---------------------------------------------------------------------------

resource "google_secret_manager_secret_iam_member" "runtime" {
  for_each = {
    for pair in setproduct(local.runtime, ["database_url", "tasks_secret"]) : "${pair[0]} ${pair[1]}" => {
      account = pair[0]
      secret  = pair[1] == "database_url" ? google_secret_manager_secret.database_url.id : google_secret_manager_secret.tasks_secret.id
    }
  }

  secret_id = each.value.secret
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.sa[each.value.account].member
}

resource "google_secret_manager_secret_iam_member" "migrate" {
  secret_id = google_secret_manager_secret.database_url.id
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.sa["migrate"].member
}

resource "google_secret_manager_secret_iam_member" "grpc_shared_secret" {
  secret_id = google_secret_manager_secret.grpc_shared_secret.id
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.sa["grpc"].member
}

# ---------------------------------------------------------------------------
# Pub/Sub
# ---------------------------------------------------------------------------

resource "google_pubsub_topic_iam_member" "publishers" {
  for_each = {
    for pair in setproduct(local.runtime, ["conversation", "domain"]) : "${pair[0]} ${pair[1]}" => {
      account = pair[0]
      topic   = pair[1] == "conversation" ? google_pubsub_topic.conversation_events.id : google_pubsub_topic.domain_events.id
    }
  }

  topic  = each.value.topic
  role   = "roles/pubsub.publisher"
  member = google_service_account.sa[each.value.account].member
}

# Readiness probes (`/health/ready`, shared/app/health.py) read the topics (pubsub.topics.get):
# publishing alone grants no read of the topic itself.
resource "google_pubsub_topic_iam_member" "probe_viewers" {
  for_each = {
    for pair in setproduct(local.runtime, ["conversation", "domain"]) : "${pair[0]} ${pair[1]}" => {
      account = pair[0]
      topic   = pair[1] == "conversation" ? google_pubsub_topic.conversation_events.id : google_pubsub_topic.domain_events.id
    }
  }

  topic  = each.value.topic
  role   = "roles/pubsub.viewer"
  member = google_service_account.sa[each.value.account].member
}

# Each relay instance creates (and later deletes) its own subscription to the conversation
# events topic: attach to that topic only, and manage subscriptions in this project.
resource "google_pubsub_topic_iam_member" "relay_attaches" {
  topic  = google_pubsub_topic.conversation_events.id
  role   = "roles/pubsub.subscriber"
  member = google_service_account.sa["relay"].member
}

resource "google_project_iam_custom_role" "relay_subscriptions" {
  role_id     = "whisprMessagingRelaySubscriptions"
  title       = "Whispr messaging relay: own subscriptions"
  description = "Create, read, pull from and delete the relay's per-instance subscriptions."
  permissions = [
    "pubsub.subscriptions.consume",
    "pubsub.subscriptions.create",
    "pubsub.subscriptions.delete",
    "pubsub.subscriptions.get",
  ]
}

resource "google_project_iam_member" "relay_subscriptions" {
  project = var.project
  role    = google_project_iam_custom_role.relay_subscriptions.id
  member  = google_service_account.sa["relay"].member
}

# Pub/Sub mints the push identity's OIDC tokens (needed explicitly in older projects).
resource "google_service_account_iam_member" "pubsub_agent_mints_push_tokens" {
  service_account_id = google_service_account.sa["push"].name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = local.pubsub_service_agent
}

# ---------------------------------------------------------------------------
# Cloud Tasks: the core enqueues (and cancels) scheduled firings, with the invoker's identity.
# ---------------------------------------------------------------------------

resource "google_cloud_tasks_queue_iam_member" "runtime" {
  for_each = {
    for pair in setproduct(local.runtime, ["roles/cloudtasks.enqueuer", "roles/cloudtasks.taskDeleter"]) :
    "${pair[0]} ${pair[1]}" => { account = pair[0], role = pair[1] }
  }

  name     = google_cloud_tasks_queue.scheduled.name
  location = var.region
  role     = each.value.role
  member   = google_service_account.sa[each.value.account].member
}

resource "google_service_account_iam_member" "runtime_acts_as_invoker" {
  for_each = local.runtime

  service_account_id = google_service_account.sa["invoker"].name
  role               = "roles/iam.serviceAccountUser"
  member             = google_service_account.sa[each.value].member
}

# ---------------------------------------------------------------------------
# Sibling services: every component calls them (block checks, media checks, pushes) with its
# own ID token, which Cloud Run IAM checks against roles/run.invoker on the sibling.
# ---------------------------------------------------------------------------

resource "google_cloud_run_v2_service_iam_member" "sibling_invokers" {
  for_each = {
    for pair in setproduct(keys(var.sibling_run_services), local.runtime) : "${pair[0]} ${pair[1]}" => {
      service = var.sibling_run_services[pair[0]]
      account = pair[1]
    }
  }

  project  = each.value.service.project
  location = each.value.service.location
  name     = each.value.service.name
  role     = "roles/run.invoker"
  member   = google_service_account.sa[each.value.account].member
}
