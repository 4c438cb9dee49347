"""The login wall: with a login on, a visitor who has not logged in gets the login page and
nothing else. Gradio's own check guards most routes, but its `GET /` still embeds the whole API
description (every endpoint, its parameters, absolute paths of this install), FastAPI serves
`/openapi.json`, and a few routes have no check; this ASGI middleware sits in front of them
all. It knows the login only through gradio's own records (`app.auth`, `app.tokens`, the
access-token cookie), so logging in and out works as gradio documents it.
"""

from __future__ import annotations

import json

# What the login page itself needs before anyone logs in: the page, its scripts, styles and icons,
# and the login form's POST. Everything else waits for a login.
OPEN_PATHS = ("/", "/login", "/login/", "/logout", "/favicon.ico", "/theme.css", "/gradio_api/theme.css",
              "/manifest.json", "/robots.txt", "/gradio_api/login_check", "/gradio_api/login_check/",
              "/gradio_api/startup-events")  # launch() itself calls this one to see the server is up
OPEN_PREFIXES = ("/assets/", "/static/", "/svelte/", "/pwa_icon")


class LoginWall:
    """ASGI middleware for gradio's FastAPI app (pass it in launch's `app_kwargs`)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        gradio_app = scope.get("app")
        if getattr(gradio_app, "auth", None) is None or _logged_in(gradio_app, scope):
            return await self.app(scope, receive, send)
        path = scope.get("path", "/")
        root = scope.get("root_path", "")
        path = path[len(root):] if root and path.startswith(root) else path
        if path == "/" and scope.get("method") in ("GET", "HEAD"):
            return await _login_page(gradio_app, scope, receive, send)
        if path in OPEN_PATHS or path.startswith(OPEN_PREFIXES):
            return await self.app(scope, receive, send)
        if scope["type"] == "websocket":
            return await send({"type": "websocket.close", "code": 1008})
        body = json.dumps({"detail": "Not authenticated: log in first"}).encode()
        await send({"type": "http.response.start", "status": 401,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


def _logged_in(gradio_app, scope) -> bool:
    from starlette.requests import HTTPConnection

    cookies = HTTPConnection(scope).cookies
    cookie_id = getattr(gradio_app, "cookie_id", "")
    token = cookies.get(f"access-token-{cookie_id}") or cookies.get(f"access-token-unsecure-{cookie_id}")
    return bool(token) and token in getattr(gradio_app, "tokens", {})


async def _login_page(gradio_app, scope, receive, send):
    """Gradio's own page in its logged-out form, without the API description it would embed."""
    from gradio import route_utils
    from gradio.routes import templates
    from starlette.requests import Request

    request = Request(scope, receive)
    blocks = gradio_app.get_blocks()
    root = route_utils.get_root_url(request=request, route_path="/", root_path=gradio_app.root_path)
    config = {"auth_required": True, "auth_message": blocks.auth_message, "space_id": blocks.space_id, "root": root,
              "page": {"": {"layout": {}}}, "pages": [""], "components": [], "dependencies": [], "current_page": "",
              "title": blocks.title}
    template = "frontend/share.html" if blocks.share else "frontend/index.html"
    response = templates.TemplateResponse(request=request, name=template, context={
        "base_url": "./", "config": config, "gradio_api_info": {"named_endpoints": {}, "unnamed_endpoints": {}}})
    await response(scope, receive, send)
