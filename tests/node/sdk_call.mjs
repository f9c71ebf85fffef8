// The TypeScript SDK 1.x client calling one tool over streamable HTTP, as any host built on it does: it checks
// a result's structuredContent against the tool's outputSchema and throws when they disagree.
// node sdk_call.mjs URL TOOL < ARGS_JSON -> prints one JSON line: the result, or the error the client threw.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const [url, tool] = process.argv.slice(2);
const args = await new Promise((ok) => { let s = ""; process.stdin.on("data", (d) => (s += d)); process.stdin.on("end", () => ok(s)); });
const client = new Client({ name: "hive-call-sdk-test", version: "1.0.0" });
await client.connect(new StreamableHTTPClientTransport(new URL(url)));
await client.listTools(); // the client keeps each tool's outputSchema to check results against
let seen;
try {
  seen = { result: await client.callTool({ name: tool, arguments: JSON.parse(args) }) };
} catch (e) {
  seen = { threw: { code: e.code ?? null, message: String(e.message) } };
}
await client.close();
console.log(JSON.stringify(seen));
