// Swagger UI over this server's /openapi.json. A file of its own, not an inline script, so
// the page's Content-Security-Policy can refuse inline code. validatorUrl: null keeps the
// page from calling validator.swagger.io: nothing is loaded from another host.
window.addEventListener('load', function () {
  window.ui = SwaggerUIBundle({
    url: '/openapi.json',
    dom_id: '#swagger-ui',
    deepLinking: true,
    validatorUrl: null,
    withCredentials: true,
    presets: [SwaggerUIBundle.presets.apis],
    layout: 'BaseLayout'
  });
});
