"""The HTTP surface (`--transport http|sse`): what stands between the network and the SDK's app.

`hosts` (Host/Origin: DNS-rebinding protection), `guard` (/healthz, bearer
tokens, the body limit), `shutdown` (a grace period for calls in flight),
`routing` (a session's messages to their event streams) and `app` (the layers in
order, and uvicorn). The ASGI shapes every HTTP layer shares, these and the
metrics', the overhead header's and the dashboard's, are `hive_mcp.asgi`. Import
the modules by their own names: the package itself imports nothing.
"""

