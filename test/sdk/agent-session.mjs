// A short scripted agent session over Streamable HTTP with the official MCP SDK, as an agent
// developer would write it: connect with a bearer token, list tools, call one, show the
// governed result. A tool a person must confirm is asked through the client's elicitation
// handler, which shows the request and approves it (standing in for the person). scripts/demo.sh
// runs it against its bridge.
//   node agent-session.mjs URL TOKEN TOOL JSON_ARGUMENTS
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ElicitRequestSchema } from '@modelcontextprotocol/sdk/types.js';

const [url, token, tool, args] = process.argv.slice(2);
const transport = new StreamableHTTPClientTransport(new URL(url), {
  requestInit: { headers: { authorization: `Bearer ${token}` } }
});
const client = new Client({ name: 'pg_mcp-demo-agent', version: '1.0.0' }, { capabilities: { elicitation: {} } });
client.setRequestHandler(ElicitRequestSchema, async (request) => {
  console.log(`elicitation/create from the server: "${request.params.message}"`);
  console.log('  the person approves (Accept)');
  return { action: 'accept', content: {} };
});
await client.connect(transport);
const server = client.getServerVersion();
console.log(`connected to ${server.name} ${server.version}`);
const { tools } = await client.listTools();
console.log(`tools/list: ${tools.map((t) => t.name).join(', ')}`);
const result = await client.callTool({ name: tool, arguments: JSON.parse(args) });
console.log(`tools/call ${tool} ${args}: ${result.isError ? 'error' : 'ok'}, audit id ${result._meta?.['pg-mcp/audit_id']}`);
console.log(JSON.stringify(result.structuredContent ?? result.content, null, 2).split('\n').slice(0, 16).join('\n'));
await transport.terminateSession().catch(() => {});
await client.close();
