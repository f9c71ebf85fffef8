# hive-mcp over streamable HTTP, for a container platform. Build and run:
#   docker build -t hive-mcp .
#   docker run --rm -p 8765:8765 -e HIVE_MCP_AUTH_TOKEN=... -e HIVE_MCP_ALLOWED_HOSTS=localhost:8765 \
#     -e OPENAI_API_KEY=... hive-mcp
# It listens on every address, so it refuses to start without a bearer token (HIVE_MCP_AUTH_TOKEN or
# HIVE_MCP_AUTH_TOKEN_FILE) and without the Host names clients use (HIVE_MCP_ALLOWED_HOSTS).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY hive_mcp ./hive_mcp
RUN pip install --no-cache-dir "./.[files]" \
    && useradd --create-home --uid 10001 --shell /usr/sbin/nologin hive \
    && rm -rf /src

USER 10001
WORKDIR /home/hive

# Dumps, conversations and the spend ledger live in the hive home: mount a volume here to keep them.
ENV HIVE_HOME=/home/hive/.hive \
    HIVE_MCP_TRANSPORT=http \
    HIVE_MCP_HOST=0.0.0.0 \
    HIVE_MCP_PORT=8765

EXPOSE 8765

# /healthz answers without a token and whatever the Host check allows.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8765/healthz', timeout=4)"]

CMD ["hive-mcp"]
