# Pub/Sub.
#
# "One topic per conversation" is realised as ONE topic whose messages are published with
# ordering key = conversation id: Pub/Sub keeps each key in order, so every conversation is
# its own ordered stream, without one topic per conversation (a project has at most 10,000
# topics and 10,000 subscriptions, which a few thousand conversations would exhaust).
# Each relay instance creates its own ordered, expiring subscription to this topic at start
# and filters to the conversations its sockets joined (see iam.tf for its permissions).

resource "google_pubsub_topic" "conversation_events" {
  name   = "messaging-conversation-events"
  labels = merge(local.labels, { ordering-key = "conversation_id" })

  # Relays are live consumers that catch up from PostgreSQL after a gap: short retention.
  message_retention_duration = "3600s"

  depends_on = [google_project_service.apis]
}

# Domain events for sibling services (CloudEvents 1.0 JSON, attributes `type` and
# `conversation_id`, ordering key = conversation id). Siblings create their own subscriptions.
resource "google_pubsub_topic" "domain_events" {
  name                       = "messaging-domain-events"
  labels                     = merge(local.labels, { ordering-key = "conversation_id" })
  message_retention_duration = "604800s"

  depends_on = [google_project_service.apis]
}

# Sibling events that could not be handled after var.event_max_delivery_attempts deliveries.
resource "google_pubsub_topic" "dead_letter" {
  name   = "messaging-events-dead-letter"
  labels = local.labels

  depends_on = [google_project_service.apis]
}

# Keeps dead letters (7 days) for inspection and replay; a topic alone would drop them.
resource "google_pubsub_subscription" "dead_letter" {
  name                       = "messaging-events-dead-letter"
  topic                      = google_pubsub_topic.dead_letter.id
  message_retention_duration = "604800s"
  ack_deadline_seconds       = 60
  labels                     = local.labels

  expiration_policy {
    ttl = ""
  }
}

# Sibling services' topics pushed to the `events` function (user.blocked, user.unblocked,
# user.deleted, group.updated). The function is idempotent; a message it keeps failing on
# goes to the dead-letter topic (the function answers 400 to what it cannot read). The endpoint
# is the function's first POST route in the route table (under the API base path). The event
# contract siblings publish: docs/events.md.
locals {
  events_push_path = try(
    "${local.api_base_path}${[for route in var.functions["events"].routes : route.path if route.method == "POST"][0]}",
    "",
  )
}

resource "google_pubsub_subscription" "sibling_events" {
  for_each = local.has_events_function ? var.sibling_event_topics : {}

  name                       = "messaging-events-from-${each.key}"
  topic                      = each.value
  ack_deadline_seconds       = 60
  message_retention_duration = "604800s"
  labels                     = local.labels

  push_config {
    # the handler also wants the internal secret (as for task targets): on the endpoint, the
    # one place a push subscription can carry it
    push_endpoint = "${google_cloudfunctions2_function.fn["events"].service_config[0].uri}${local.events_push_path}?token=${random_password.tasks_secret.result}"

    oidc_token {
      service_account_email = google_service_account.sa["push"].email
      audience              = google_cloudfunctions2_function.fn["events"].service_config[0].uri
    }
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.dead_letter.id
    max_delivery_attempts = var.event_max_delivery_attempts
  }

  retry_policy {
    minimum_backoff = "10s"
    maximum_backoff = "600s"
  }

  expiration_policy {
    ttl = ""
  }

  depends_on = [
    google_pubsub_topic_iam_member.dead_letter_publisher,
    google_service_account_iam_member.pubsub_agent_mints_push_tokens,
  ]
}

# The Pub/Sub service agent forwards dead letters: it publishes to the dead-letter topic and
# acknowledges on the source subscriptions.
locals {
  pubsub_service_agent = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
}

resource "google_pubsub_topic_iam_member" "dead_letter_publisher" {
  topic  = google_pubsub_topic.dead_letter.id
  role   = "roles/pubsub.publisher"
  member = local.pubsub_service_agent
}

resource "google_pubsub_subscription_iam_member" "dead_letter_forwarder" {
  for_each = google_pubsub_subscription.sibling_events

  subscription = each.value.id
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_service_agent
}
