# API Gateway in front of the public functions (clients' REST traffic). The OpenAPI document
# (Swagger 2.0, x-google-backend per path) is generated from the route table and is a
# template here: `${backends["<function>"]}` becomes that function's URL. The gateway calls
# the functions with its own identity (an ID token); the client's `Authorization` header
# reaches the function as `X-Forwarded-Authorization`.

resource "google_api_gateway_api" "api" {
  provider = google-beta

  api_id       = "whispr-messaging"
  display_name = "Whispr messaging"
  labels       = local.labels

  depends_on = [google_project_service.apis]
}

resource "google_api_gateway_api_config" "api" {
  provider = google-beta

  api                  = google_api_gateway_api.api.api_id
  api_config_id_prefix = "whispr-messaging-"
  display_name         = "Whispr messaging ${var.source_version}"
  labels               = local.labels

  openapi_documents {
    document {
      path = "openapi.yaml"
      contents = base64encode(templatefile(var.openapi_path, {
        backends = { for name, fn in local.public_functions : name => google_cloudfunctions2_function.fn[name].service_config[0].uri }
      }))
    }
  }

  gateway_config {
    backend_config {
      google_service_account = google_service_account.sa["gateway"].email
    }
  }

  lifecycle {
    create_before_destroy = true
  }
}

resource "google_api_gateway_gateway" "api" {
  provider = google-beta

  gateway_id   = "whispr-messaging"
  display_name = "Whispr messaging"
  region       = var.region
  api_config   = google_api_gateway_api_config.api.id
  labels       = local.labels
}
