# Cloud SQL PostgreSQL 15: the system of record. Private IP only. The password is generated
# here and handed to the components only through Secret Manager (DATABASE_URL); it is never
# written in this configuration. Keep the Terraform state bucket private: it holds it too.

resource "google_sql_database_instance" "main" {
  name                = "whispr-messaging"
  region              = var.region
  database_version    = "POSTGRES_15"
  deletion_protection = var.sql_deletion_protection

  settings {
    tier              = var.sql_tier
    edition           = "ENTERPRISE"
    availability_type = var.sql_availability_type
    disk_type         = "PD_SSD"
    disk_size         = var.sql_disk_size_gb
    disk_autoresize   = true
    user_labels       = local.labels

    ip_configuration {
      ipv4_enabled    = false
      private_network = google_compute_network.vpc.id
      ssl_mode        = "ENCRYPTED_ONLY" # TLS required (psycopg negotiates it: sslmode=prefer)
    }

    backup_configuration {
      enabled                        = true
      point_in_time_recovery_enabled = true
      start_time                     = "02:00"

      backup_retention_settings {
        retained_backups = 14
      }
    }

    maintenance_window {
      day  = 7
      hour = 3
    }

    insights_config {
      query_insights_enabled = true
    }

    database_flags {
      name  = "max_connections"
      value = tostring(var.sql_max_connections)
    }

    # What an incident review needs (checkov CKV_GCP_51..54, 108, 109, 111, CKV2_GCP_13), without
    # statement texts: `log_statement = ddl` and pgAudit's `ddl, role` classes record schema and
    # privilege changes, never a message's row (E2E payloads stay out of the logs).
    database_flags {
      name  = "log_checkpoints"
      value = "on"
    }
    database_flags {
      name  = "log_connections"
      value = "on"
    }
    database_flags {
      name  = "log_disconnections"
      value = "on"
    }
    database_flags {
      name  = "log_lock_waits"
      value = "on"
    }
    database_flags {
      name  = "log_hostname"
      value = "on"
    }
    database_flags {
      name  = "log_min_messages"
      value = "error"
    }
    database_flags {
      name  = "log_statement"
      value = "ddl"
    }
    database_flags {
      name  = "log_duration"
      value = "on"
    }
    database_flags {
      name  = "cloudsql.enable_pgaudit"
      value = "on"
    }
    database_flags {
      name  = "pgaudit.log"
      value = "ddl,role"
    }
  }

  depends_on = [google_service_networking_connection.private_services]
}

resource "google_sql_database" "whispr" {
  name     = "whispr_messaging"
  instance = google_sql_database_instance.main.name
}

resource "random_password" "db" {
  length  = 40
  special = false # goes into a URL unescaped
}

resource "google_sql_user" "app" {
  name     = "whispr_messaging"
  instance = google_sql_database_instance.main.name
  password = random_password.db.result
}

# ---------------------------------------------------------------------------
# Secret Manager
# ---------------------------------------------------------------------------

resource "google_secret_manager_secret" "db_password" {
  secret_id = "messaging-db-password"
  labels    = local.labels

  replication {
    auto {}
  }

  depends_on = [google_project_service.apis]
}

resource "google_secret_manager_secret_version" "db_password" {
  secret      = google_secret_manager_secret.db_password.id
  secret_data = random_password.db.result
}

# What the components read: the SQLAlchemy URL (psycopg 3 over the private IP).
resource "google_secret_manager_secret" "database_url" {
  secret_id = "messaging-database-url"
  labels    = local.labels

  replication {
    auto {}
  }

  depends_on = [google_project_service.apis]
}

resource "google_secret_manager_secret_version" "database_url" {
  secret      = google_secret_manager_secret.database_url.id
  secret_data = "postgresql+psycopg://${google_sql_user.app.name}:${random_password.db.result}@${google_sql_database_instance.main.private_ip_address}:5432/${google_sql_database.whispr.name}"
}

# Shared secret sibling services may send in gRPC metadata (the alternative to ID tokens).
resource "random_password" "grpc_shared_secret" {
  length  = 48
  special = false
}

resource "google_secret_manager_secret" "grpc_shared_secret" {
  secret_id = "messaging-grpc-shared-secret"
  labels    = local.labels

  replication {
    auto {}
  }

  depends_on = [google_project_service.apis]
}

resource "google_secret_manager_secret_version" "grpc_shared_secret" {
  secret      = google_secret_manager_secret.grpc_shared_secret.id
  secret_data = random_password.grpc_shared_secret.result
}
