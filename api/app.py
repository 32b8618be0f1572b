"""Builds the FastAPI application from an ApiContext and the routers of every resource.

Never reach into ingest internals from a route; read the stores in the context. Never let a
page load anything from outside the host: the static files (the screen's scripts and styles,
the vendored chart library, Swagger UI's assets for /docs) are served from the package.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources

from fastapi import APIRouter, FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from hazwatch.api.deps import ApiContext
from hazwatch.api.routes import health

# The package folder of static files (api/static/: README.md says what is vendored and how to
# update it), served under STATIC_URL.
STATIC_URL = "/static"
SWAGGER = f"{STATIC_URL}/vendor/swagger-ui"


def static_dir() -> str:
    """The installed static folder (a real folder: setuptools installs package data as files)."""
    return str(resources.files("hazwatch.api").joinpath("static"))


def create_app(ctx: ApiContext, routers: Sequence[APIRouter] = ()) -> FastAPI:
    # FastAPI's own /docs and /redoc load their scripts from a CDN: /docs is served below
    # with the vendored Swagger UI, /redoc not at all.
    app = FastAPI(title="hazwatch", version="0.1.0", docs_url=None, redoc_url=None)
    app.state.ctx = ctx
    for router in (health.router, *routers):
        app.include_router(router)
    app.mount(STATIC_URL, StaticFiles(directory=static_dir()), name="static")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title="hazwatch API",
            swagger_js_url=f"{SWAGGER}/swagger-ui-bundle.js",
            swagger_css_url=f"{SWAGGER}/swagger-ui.css",
            swagger_favicon_url=f"{SWAGGER}/favicon-32x32.png",
            # the default validator badge asks validator.swagger.io about the schema
            swagger_ui_parameters={"validatorUrl": None},
        )

    return app
