output "gateway_url" {
  description = "Public REST base URL (append /messaging/api/v1)."
  value       = "https://${google_api_gateway_gateway.api.default_hostname}"
}

output "relay_url" {
  description = "WebSocket relay (clients connect to wss://<host>/messaging/socket/websocket)."
  value       = google_cloud_run_v2_service.relay.uri
}

output "grpc_endpoint" {
  description = "gRPC shim endpoint for sibling services (TLS on 443)."
  value       = "${trimprefix(google_cloud_run_v2_service.grpc.uri, "https://")}:443"
}

output "function_urls" {
  description = "Direct URL of every function (IAM-protected: go through the gateway)."
  value       = { for name, fn in google_cloudfunctions2_function.fn : name => fn.service_config[0].uri }
}

output "conversation_events_topic" {
  value = google_pubsub_topic.conversation_events.id
}

output "domain_events_topic" {
  value = google_pubsub_topic.domain_events.id
}

output "dead_letter_topic" {
  value = google_pubsub_topic.dead_letter.id
}

output "tasks_queue" {
  value = google_cloud_tasks_queue.scheduled.id
}

output "sql_instance_connection_name" {
  value = google_sql_database_instance.main.connection_name
}

output "sql_private_ip" {
  value = google_sql_database_instance.main.private_ip_address
}

output "migrate_job" {
  description = "Run migrations: gcloud run jobs execute <this> --region <region> --wait"
  value       = google_cloud_run_v2_job.migrate.name
}

output "service_accounts" {
  value = { for key, sa in google_service_account.sa : key => sa.email }
}

output "sibling_invoker_members" {
  description = "The identities that call the sibling services: grant them roles/run.invoker on each sibling's Cloud Run service (done here for var.sibling_run_services)."
  value       = sort([for account in local.runtime : google_service_account.sa[account].member])
}
