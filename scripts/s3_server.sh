#!/usr/bin/env bash
# s3_server.sh: starts or stops an S3-compatible server on loopback for tests and local
# trials. The server is moto's server mode (PyPI moto[server]): MinIO would need a large Go
# build; moto honours `If-None-Match: *` on PUT (412 when the key exists), multipart upload
# and ListObjectsV2 start-after, which is what fhirlake's Delta log needs.
#
#   scripts/s3_server.sh start DIR [PORT]   # prints the endpoint URL; pid in DIR/s3.pid
#   scripts/s3_server.sh stop DIR
# Credentials are not checked by moto; use any AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY.
set -euo pipefail
cmd=${1:-}; dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: $0 start|stop DIR [PORT]" >&2; exit 2; }
case "$cmd" in
start)
  mkdir -p "$dir"
  port=${3:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')}
  python3 -m moto.server -H 127.0.0.1 -p "$port" >"$dir/s3.log" 2>&1 &
  echo $! >"$dir/s3.pid"
  for _ in $(seq 100); do
    if curl -s -o /dev/null "http://127.0.0.1:$port/"; then echo "http://127.0.0.1:$port"; exit 0; fi
    sleep 0.1
  done
  echo "s3 server did not start: $(cat "$dir/s3.log")" >&2; exit 1 ;;
stop)
  [ -f "$dir/s3.pid" ] && kill "$(cat "$dir/s3.pid")" 2>/dev/null || true
  rm -f "$dir/s3.pid" ;;
*) echo "usage: $0 start|stop DIR [PORT]" >&2; exit 2 ;;
esac
