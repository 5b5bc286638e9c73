// Starts the vendored Swagger UI on the collector's /docs page (collectors/web/docs_ui.py).
// A file of its own, not an inline script, so the page's Content-Security-Policy can allow
// scripts from the collector only ('self'). The OpenAPI URL comes from the page's
// data-openapi-url attribute; nothing is fetched from anywhere but the collector.
"use strict";
window.addEventListener("DOMContentLoaded", function () {
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.getAttribute("data-openapi-url"),
    dom_id: "#swagger-ui",
    layout: "BaseLayout",
    deepLinking: true,
    showExtensions: true,
    showCommonExtensions: true,
    validatorUrl: null, // the default badge would ask validator.swagger.io
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
  });
});
