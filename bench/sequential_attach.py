"""Sends N attach requests one after another on one keep-alive connection (for bench/instructions.sh)."""

import http.client
import json
import sys

port, count = int(sys.argv[1]), int(sys.argv[2])
connection = http.client.HTTPConnection("127.0.0.1", port)
body = json.dumps({"task_gid": "1234567890", "context_name": "design_notes"})
headers = {"Content-Type": "application/json", "Authorization": "Bearer bench-key"}
failed = 0
for _ in range(count):
    connection.request("POST", "/asana/attach-context", body, headers)
    response = connection.getresponse()
    response.read()
    failed += response.status not in (200, 201)
if failed:
    sys.exit(f"{failed} of {count} attaches failed")
