-- wrk script: the same attach as attach.lua, as an MCP `tools/call` in the stateless
-- 2026-07-28 era (no session: each request carries its protocol version and client in _meta).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
wrk.headers["Authorization"] = "Bearer bench-key"
wrk.headers["MCP-Protocol-Version"] = "2026-07-28"
wrk.headers["Mcp-Method"] = "tools/call"
wrk.headers["Mcp-Name"] = "attach_context"
wrk.body = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"attach_context",'
  .. '"arguments":{"task":"1234567890","context":"design_notes"},'
  .. '"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28",'
  .. '"io.modelcontextprotocol/clientInfo":{"name":"wrk","version":"1"},'
  .. '"io.modelcontextprotocol/clientCapabilities":{}}}}'
