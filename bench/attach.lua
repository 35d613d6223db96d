-- wrk script: POST an attach request.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer bench-key"
wrk.body = '{"task_gid":"1234567890","context_name":"design_notes"}'
