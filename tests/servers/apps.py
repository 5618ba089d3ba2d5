"""The applications the server tests run: each request runs ``handle_request``, which answers its pid."""

import os
import time


def handle_request():
    """About 12 ms of CPU and 4 ms of waiting, so that the samplers see it in every worker."""
    end = time.perf_counter() + 0.012
    n = 0
    while time.perf_counter() < end:
        n += 1
    time.sleep(0.004)
    return ("%d\n" % os.getpid()).encode()


def application(environ, start_response):
    """WSGI (gunicorn, uWSGI)."""
    body = handle_request()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


async def asgi_app(scope, receive, send):
    """ASGI (uvicorn)."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = handle_request()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
