// The official tasks extension client (@modelcontextprotocol/ext-tasks) on the TypeScript client 2.x, driving a
// 2026-07-28 server over streamable HTTP. node ext_tasks.mjs URL TOOL [BEARER] < ARGS_JSON -> one JSON line.
import { Client, StreamableHTTPClientTransport } from "@modelcontextprotocol/client";
import { createTaskSessionFromClient, resultFromTaskOutcome } from "@modelcontextprotocol/ext-tasks/client";

const [url, tool, token] = process.argv.slice(2);
const args = await new Promise((ok) => { let s = ""; process.stdin.on("data", (d) => (s += d)); process.stdin.on("end", () => ok(s)); });
const EXT = "io.modelcontextprotocol/tasks";
const auth = token ? { Authorization: `Bearer ${token}` } : {};
const clientInfo = { name: "hive-ext-tasks-test", version: "1.0.0" };
const clientCapabilities = { extensions: { [EXT]: {} } };
const client = new Client(clientInfo, { capabilities: clientCapabilities, versionNegotiation: { mode: "auto" } });
await client.connect(new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers: auth } }));

// ext-tasks sends its own 2026 requests (framed with v2RequestFraming) through this: one POST each.
let nextId = 1;
async function rawDispatch(body) {
  const request = { jsonrpc: "2.0", id: `ext-${nextId++}`, ...body };
  const name = request.method === "tools/call" ? request.params?.name : request.params?.taskId;
  const response = await fetch(url, {
    method: "POST",
    headers: {
      ...auth, "Content-Type": "application/json", Accept: "application/json, text/event-stream",
      "MCP-Protocol-Version": "2026-07-28", "Mcp-Method": request.method, ...(name ? { "Mcp-Name": name } : {}),
    },
    body: JSON.stringify(request),
  });
  const text = await response.text();
  if (process.env.HIVE_DEBUG) console.error(JSON.stringify(request), response.status, text.slice(0, 600));
  if ((response.headers.get("content-type") ?? "").includes("text/event-stream")) {
    const events = text.split(/\n\n/).map((e) => e.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5)).join("\n"));
    return events.map((d) => (d ? JSON.parse(d) : null)).find((m) => m && m.id === request.id);
  }
  return JSON.parse(text);
}

const session = createTaskSessionFromClient(client, {
  endpointId: "hive-mcp", rawDispatch,
  v2RequestFraming: { protocolVersion: "2026-07-28", clientInfo, clientCapabilities },
});
const seen = { era: client.getProtocolEra(), advertised: client.getServerCapabilities()?.extensions?.[EXT] ?? null };
try {
  const execution = await session.callTool(tool, JSON.parse(args));
  seen.kind = execution.kind;
  const { outcome } = await execution.settle();
  seen.outcome = outcome.status ?? outcome.kind ?? null;
  seen.result = resultFromTaskOutcome(outcome);
} finally {
  await session.close();
  await client.close();
}
console.log(JSON.stringify(seen));
