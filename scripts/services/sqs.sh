# SQS-compatible server for the `sqs` tests: moto_server (the `test` extra installs
# moto[server]), in memory, on a free local port. Sourced by scripts/test; skipped when
# CONVEYOR_TEST_SQS_ENDPOINT points at an SQS endpoint already.

start_sqs() {
  local port log pid
  port="$("$VENV/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  log="$(mktemp -t conveyor-moto.XXXXXX.log)"
  say "Starting moto_server (SQS) on 127.0.0.1:$port (log: $log)"
  "$VENV/bin/moto_server" -H 127.0.0.1 -p "$port" >"$log" 2>&1 &
  pid=$!
  on_exit "kill $pid; wait $pid 2>/dev/null; rm -f $log"
  for _ in $(seq 1 300); do
    # Ready when it answers an HTTP request, not merely when the port is open.
    if "$VENV/bin/python" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1).close()' "http://127.0.0.1:$port/moto-api/" 2>/dev/null; then
      export CONVEYOR_TEST_SQS_ENDPOINT="http://127.0.0.1:$port"
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      say "moto_server exited at start:"
      cat "$log" >&2
      return 1
    fi
    sleep 0.1
  done
  say "moto_server did not answer within 30 s"
  return 1
}

if [ -z "${CONVEYOR_TEST_SQS_ENDPOINT:-}" ]; then
  start_sqs
fi
