// The TypeScript SDK 1.x client's experimental tasks API (2025-11-25) driving a server over streamable HTTP.
// node sdk_tasks.mjs URL TOOL [BEARER] < ARGS_JSON -> prints one JSON line: what the client saw.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { TaskStatusNotificationSchema } from "@modelcontextprotocol/sdk/types.js";

const [url, tool, token] = process.argv.slice(2);
const args = await new Promise((ok) => { let s = ""; process.stdin.on("data", (d) => (s += d)); process.stdin.on("end", () => ok(s)); });
const headers = token ? { Authorization: `Bearer ${token}` } : {};
const client = new Client({ name: "hive-tasks-sdk-test", version: "1.0.0" });
await client.connect(new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers } }));
const seen = { capability: client.getServerCapabilities()?.tasks ?? null, messages: [], notified: [] };
let ended;
const told = new Promise((ok) => (ended = ok));
client.setNotificationHandler(TaskStatusNotificationSchema, (n) => {
  seen.notified.push({ taskId: n.params.taskId, status: n.params.status });
  if (["completed", "failed", "cancelled"].includes(n.params.status)) ended();
});
const listed = await client.listTools();
seen.taskSupport = Object.fromEntries(listed.tools.map((t) => [t.name, t.execution?.taskSupport ?? null]));
const stream = client.experimental.tasks.callToolStream(
  { name: tool, arguments: JSON.parse(args) }, undefined, { task: { ttl: 60000 } },
);
for await (const message of stream) {
  if (message.type === "taskCreated") seen.taskId = message.task.taskId;
  seen.messages.push({ type: message.type, status: message.task?.status, result: message.result, error: message.error?.message });
}
seen.listed = (await client.experimental.tasks.listTasks()).tasks.map((t) => t.taskId);
seen.got = await client.experimental.tasks.getTask(seen.taskId);
await Promise.race([told, new Promise((ok) => setTimeout(ok, 10000).unref())]); // the status notification, if any
await client.close();
console.log(JSON.stringify(seen));
