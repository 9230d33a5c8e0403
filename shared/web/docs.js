// Swagger UI (swagger-ui-dist from npm, shipped in shared/web/vendor) on this service's own
// OpenAPI document: no CDN, works offline. "Authorize" is the token box; it is kept across reloads.
window.ui = SwaggerUIBundle({
  url: "openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  persistAuthorization: true,
  tryItOutEnabled: true,
  displayRequestDuration: true,
  docExpansion: "list",
  defaultModelsExpandDepth: 0,
  filter: true,
});
