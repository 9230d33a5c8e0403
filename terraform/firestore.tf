# Firestore (native mode): fast-changing shared state, i.e. presence and device sessions.
# PostgreSQL stays the system of record. A project has one `(default)` database; if it
# already exists, import it: terraform import google_firestore_database.state "(default)".

resource "google_firestore_database" "state" {
  name                    = "(default)"
  location_id             = var.firestore_location != "" ? var.firestore_location : var.region
  type                    = "FIRESTORE_NATIVE"
  concurrency_mode        = "OPTIMISTIC"
  delete_protection_state = "DELETE_PROTECTION_ENABLED"
  deletion_policy         = "ABANDON"

  depends_on = [google_project_service.apis]
}
