# Basic monitoring: an uptime check on the public health route (through the gateway), and
# alerts on it, on 5xx responses from any Cloud Run service or function, and on dead letters.

resource "google_monitoring_notification_channel" "email" {
  count = var.alert_email == "" ? 0 : 1

  display_name = "Whispr messaging alerts"
  type         = "email"
  labels = {
    email_address = var.alert_email
  }
}

locals {
  notification_channels = google_monitoring_notification_channel.email[*].id
}

resource "google_monitoring_uptime_check_config" "health" {
  display_name = "whispr-messaging health"
  timeout      = "10s"
  period       = "60s"

  http_check {
    path         = "/messaging/api/v1/health/ready" # readiness: the store and the bus answer
    port         = 443
    use_ssl      = true
    validate_ssl = true

    accepted_response_status_codes {
      status_class = "STATUS_CLASS_2XX"
    }
  }

  monitored_resource {
    type = "uptime_url"
    labels = {
      project_id = var.project
      host       = google_api_gateway_gateway.api.default_hostname
    }
  }
}

resource "google_monitoring_alert_policy" "health_down" {
  display_name          = "Whispr messaging: health check failing"
  combiner              = "OR"
  notification_channels = local.notification_channels

  conditions {
    display_name = "health check fails from several regions"

    condition_threshold {
      filter          = "metric.type=\"monitoring.googleapis.com/uptime_check/check_passed\" AND resource.type=\"uptime_url\" AND metric.label.check_id=\"${google_monitoring_uptime_check_config.health.uptime_check_id}\""
      comparison      = "COMPARISON_GT"
      threshold_value = 1
      duration        = "120s"

      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_NEXT_OLDER"
        cross_series_reducer = "REDUCE_COUNT_FALSE"
        group_by_fields      = ["resource.label.host"]
      }

      trigger {
        count = 1
      }
    }
  }

  documentation {
    content   = "GET /messaging/api/v1/health through the API gateway is failing. Check the `health` function's logs and the gateway."
    mime_type = "text/markdown"
  }
}

# Functions gen2 are Cloud Run services, so one metric covers functions, relay and shim.
resource "google_monitoring_alert_policy" "server_errors" {
  display_name          = "Whispr messaging: 5xx responses"
  combiner              = "OR"
  notification_channels = local.notification_channels

  conditions {
    display_name = "5xx rate per service above ${var.alert_5xx_per_second}/s for 5 minutes"

    condition_threshold {
      filter          = "resource.type=\"cloud_run_revision\" AND metric.type=\"run.googleapis.com/request_count\" AND metric.label.response_code_class=\"5xx\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.alert_5xx_per_second
      duration        = "300s"

      aggregations {
        alignment_period     = "60s"
        per_series_aligner   = "ALIGN_RATE"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["resource.label.service_name"]
      }

      trigger {
        count = 1
      }
    }
  }

  documentation {
    content   = "A Whispr messaging service or function answers 5xx. The API never answers 500 for bad input: this is a bug or an unavailable dependency (Cloud SQL, Pub/Sub, Firestore). See the service's logs."
    mime_type = "text/markdown"
  }
}

resource "google_monitoring_alert_policy" "dead_letters" {
  display_name          = "Whispr messaging: sibling events dead-lettered"
  combiner              = "OR"
  notification_channels = local.notification_channels

  conditions {
    display_name = "messages waiting in the dead-letter subscription"

    condition_threshold {
      filter          = "resource.type=\"pubsub_subscription\" AND resource.label.subscription_id=\"${google_pubsub_subscription.dead_letter.name}\" AND metric.type=\"pubsub.googleapis.com/subscription/num_undelivered_messages\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "300s"

      aggregations {
        alignment_period   = "60s"
        per_series_aligner = "ALIGN_MAX"
      }

      trigger {
        count = 1
      }
    }
  }

  documentation {
    content   = "Events from sibling services failed ${var.event_max_delivery_attempts} times and were dead-lettered. Inspect them with: gcloud pubsub subscriptions pull ${google_pubsub_subscription.dead_letter.name} --limit 10"
    mime_type = "text/markdown"
  }
}

# The service's own metrics (shared/telemetry/metrics.py, docs/operations.md "Metrics") reach
# Cloud Monitoring through Google Cloud Managed Service for Prometheus, whose sidecar scrapes
# /metrics in every relay and gRPC shim instance (run.tf); the policies below query them in PromQL.

resource "google_monitoring_alert_policy" "outbox_lag" {
  display_name          = "Whispr messaging: events not published"
  combiner              = "OR"
  notification_channels = local.notification_channels

  conditions {
    display_name = "oldest unpublished event older than ${var.alert_outbox_lag_seconds}s"

    condition_prometheus_query_language {
      query    = "max(whispr_outbox_lag_seconds) > ${var.alert_outbox_lag_seconds}"
      duration = "300s"
    }
  }

  documentation {
    content   = "Committed events wait in the outbox: Pub/Sub publishing fails or lags (whispr_bus_publish_failures_total). The sweeper (POST /tasks/sweep, every minute) republishes them; if the lag keeps growing, check Pub/Sub and the sweeper's Cloud Scheduler job."
    mime_type = "text/markdown"
  }
}

resource "google_monitoring_alert_policy" "sibling_breaker_open" {
  display_name          = "Whispr messaging: a sibling service's circuit is open"
  combiner              = "OR"
  notification_channels = local.notification_channels

  conditions {
    display_name = "whispr_sibling_breaker_open = 1 for 5 minutes"

    condition_prometheus_query_language {
      query    = "max by (service) (whispr_sibling_breaker_open) > 0"
      duration = "300s"
    }
  }

  documentation {
    content   = "Calls to a sibling service (user, media, notification) fail at once because its circuit is open: that service is down or too slow (whispr_sibling_call_duration_seconds). Check it; the circuit closes by itself after a successful probe."
    mime_type = "text/markdown"
  }
}
