"""The API browser: Swagger UI at /docs over the gateway's own /openapi.json,
and `/` sending a visitor there.

Swagger UI's files come from the swagger-ui-bundle package, served from its
directory: the service runs offline, so the page loads nothing from a CDN.
Links are relative, so the page also works behind a proxy that serves the
gateway under a path of its own.
"""

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

DOCS_PATH = "/docs"
ASSETS_PATH = "/docs/assets"

# The swagger-ui-bundle package ships Swagger UI 4, which reads OpenAPI 3.0
# documents only: the page hands it the 3.1 document as 3.0.3 (what it shows
# differs only in how `null` beside a type is drawn).
_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Billing API</title>
  <link rel="stylesheet" href="docs/assets/swagger-ui.css">
  <link rel="icon" type="image/png" href="docs/assets/favicon-32x32.png">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="docs/assets/swagger-ui-bundle.js"></script>
  <script>
    window.ui = SwaggerUIBundle({
      url: "openapi.json",
      dom_id: "#swagger-ui",
      deepLinking: true,
      presets: [SwaggerUIBundle.presets.apis],
      layout: "BaseLayout",
      responseInterceptor: (response) => {
        if (response.url.endsWith("/openapi.json") && response.body && response.body.openapi) {
          response.body.openapi = "3.0.3";
          response.text = JSON.stringify(response.body);
          response.data = response.text;
        }
        return response;
      },
    });
  </script>
</body>
</html>
"""


def api_browser_routes() -> list[BaseRoute]:
    return [
        Route("/", _to_docs, methods=["GET"]),
        Route(DOCS_PATH, _page, methods=["GET"]),
        Mount(ASSETS_PATH, app=StaticFiles(directory=swagger_ui_path), name="docs-assets"),
    ]


async def _page(_: Request) -> Response:
    return HTMLResponse(_PAGE)


async def _to_docs(_: Request) -> Response:
    # Relative, like the page's own links: right behind a path-prefixing proxy too.
    return RedirectResponse("docs", status_code=307)
