-- wrk script: POST a story straight to the fake upstream (the floor).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"data":{"text":"x"}}'
