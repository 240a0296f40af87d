#!/bin/sh
# Serve one page over HTTP: the example of `make run` (examples/hello.yaml).
# The page says "$GREETING from $POD_NAME" (hello, the hostname); PORT (8080) and
# WWW_DIR (/www) say where to serve. On SIGTERM it serves DRAIN_SECONDS (0) more,
# so clients move on before the port closes.
# httpd as PID 1 would ignore SIGTERM (PID 1 gets no default handlers), so the pod
# would wait out its grace period: this shell stays PID 1 and passes TERM on.
www="${WWW_DIR:-/www}"
port="${PORT:-8080}"
mkdir -p "$www"
echo "${GREETING:-hello} from ${POD_NAME:-$(hostname)}" > "$www/index.html"
echo "serving $www on port $port"
httpd -f -v -p "$port" -h "$www" &
server=$!
trap 'sleep "${DRAIN_SECONDS:-0}"; kill "$server"; wait "$server"; exit 0' TERM INT
wait "$server"
