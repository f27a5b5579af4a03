// ReDoc over this server's /openapi.json (a file of its own for the page's CSP; the fonts
// are the system's, so nothing is fetched from another host).
window.addEventListener('load', function () {
  Redoc.init('/openapi.json', {
    hideDownloadButton: false,
    expandResponses: '200,201',
    theme: {typography: {fontFamily: 'system-ui, sans-serif', headings: {fontFamily: 'system-ui, sans-serif'}}}
  }, document.getElementById('redoc'));
});
