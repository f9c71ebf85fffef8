"""The HTTP surface (`--transport http|sse`): what stands between the network and the SDK's app.

`asgi` (shapes, paths, a JSON reply), `hosts` (Host/Origin: DNS-rebinding
protection), `guard` (/healthz, bearer tokens, the body limit), `shutdown` (a
grace period for calls in flight), `routing` (a session's messages to their
event streams) and `app` (the layers in order, and uvicorn). Import them by
their own names: the package itself imports nothing, so what needs only `asgi`'s
shapes (observe's ASGI layers) does not load the app that builds on them.
"""

