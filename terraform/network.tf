# Private networking: Cloud SQL has no public IP; functions, relay, shim and the migration job
# reach it through a Serverless VPC Access connector (private ranges only: everything else,
# Google APIs included, goes out directly).

resource "google_compute_network" "vpc" {
  name                    = "whispr-messaging"
  auto_create_subnetworks = false

  depends_on = [google_project_service.apis]
}

# Private services access: the peering Cloud SQL's private IP lives in.
resource "google_compute_global_address" "private_services" {
  name          = "whispr-messaging-private-services"
  purpose       = "VPC_PEERING"
  address_type  = "INTERNAL"
  prefix_length = 20
  network       = google_compute_network.vpc.id
}

resource "google_service_networking_connection" "private_services" {
  network                 = google_compute_network.vpc.id
  service                 = "servicenetworking.googleapis.com"
  reserved_peering_ranges = [google_compute_global_address.private_services.name]
}

resource "google_vpc_access_connector" "serverless" {
  name          = "whispr-messaging"
  region        = var.region
  network       = google_compute_network.vpc.name
  ip_cidr_range = var.vpc_connector_cidr
  machine_type  = var.vpc_connector_machine_type
  min_instances = 2
  max_instances = 10

  depends_on = [google_project_service.apis]
}
