"""Sends N attach requests one after another on one keep-alive connection (for
bench/instructions.sh): `POST /asana/attach-context`, or with `--mcp` the same attach as a
stateless MCP `tools/call` (2026-07-28) to `/mcp`."""

import http.client
import json
import sys

mcp = "--mcp" in sys.argv
port, count = (int(a) for a in sys.argv[1:] if a != "--mcp")
connection = http.client.HTTPConnection("127.0.0.1", port)
headers = {"Content-Type": "application/json", "Authorization": "Bearer bench-key"}
if mcp:
    path = "/mcp"
    body = json.dumps({
        "jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {
            "name": "attach_context",
            "arguments": {"task": "1234567890", "context": "design_notes"},
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientInfo": {"name": "bench", "version": "1"},
                "io.modelcontextprotocol/clientCapabilities": {},
            },
        },
    })
    headers.update({
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": "2026-07-28",
        "Mcp-Method": "tools/call",
        "Mcp-Name": "attach_context",
    })
else:
    path = "/asana/attach-context"
    body = json.dumps({"task_gid": "1234567890", "context_name": "design_notes"})
failed = 0
for _ in range(count):
    connection.request("POST", path, body, headers)
    response = connection.getresponse()
    answer = response.read()
    failed += response.status not in (200, 201) or (mcp and b'"isError":false' not in answer)
if failed:
    sys.exit(f"{failed} of {count} attaches failed")
