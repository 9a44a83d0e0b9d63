#!/usr/bin/env bash
# The Mesh as a cluster of plain processes on loopback, in the foreground: redis-server, a
# MongoDB-wire server (FerretDB v1, built from the Go module proxy on first use), two gateways
# (127.0.0.1:4001 and :4002), two API workers, three world replicas (Raft), the bot service
# and the model proxy. Data goes to a fresh folder (MESH_CLUSTER_DIR, or a new temp folder).
# Ctrl-C or SIGTERM stops everything it started. `make cluster` runs it.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
data=${MESH_CLUSTER_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/mesh-cluster.XXXXXX")}
mkdir -p "$data/bin" "$data/logs"
export GOPROXY=${GOPROXY:-https://proxy.golang.org}

pids=()
stop() {
	trap - INT TERM EXIT
	echo "cluster: stopping ${#pids[@]} processes"
	for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
	for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
	echo "cluster: stopped; data and logs in $data"
}
trap stop INT TERM EXIT

need() { command -v "$1" >/dev/null 2>&1 || { echo "cluster: $1 not found ($2)" >&2; exit 1; }; }
need redis-server "apt-get install redis-server, or run make test once"
need go "Go 1.26"

echo "cluster: building meshd"
(cd "$root" && go build -o "$data/bin/meshd" ./cmd/meshd)
ferret=${MESH_FERRETDB_BIN:-${XDG_CACHE_HOME:-$HOME/.cache}/themesh/ferretdb-v1.24.2/ferretdb}
if [ ! -x "$ferret" ]; then
	echo "cluster: building FerretDB v1.24.2 (once per machine)"
	mkdir -p "$(dirname "$ferret")"
	(cd "$root/internal/tools/ferretdb" && go build -o "$ferret" .)
fi

start() { # name, command...
	local name=$1; shift
	"$@" >"$data/logs/$name.log" 2>&1 &
	pids+=($!)
	echo "cluster: $name (pid $!) log $data/logs/$name.log"
}

wait_port() { # host:port, what
	for _ in $(seq 1 100); do
		if (exec 3<>"/dev/tcp/${1%:*}/${1#*:}") 2>/dev/null; then return 0; fi
		sleep 0.1
	done
	echo "cluster: $2 did not start on $1" >&2
	exit 1
}

redis_port=${MESH_CLUSTER_REDIS_PORT:-6380}
mongo_port=${MESH_CLUSTER_MONGO_PORT:-27018}
start redis redis-server --bind 127.0.0.1 --port "$redis_port" --save "" --appendonly yes \
	--dir "$data" --logfile "" --daemonize no
start mongo "$ferret" -listen-addr "127.0.0.1:$mongo_port" -data-dir "$data/mongo"
wait_port "127.0.0.1:$redis_port" redis-server
wait_port "127.0.0.1:$mongo_port" FerretDB

export REDIS_URL="redis://127.0.0.1:$redis_port/0"
export MONGODB_URI="mongodb://127.0.0.1:$mongo_port/mesh"
# Every process runs on this machine: files' bytes go to one folder. (GridFS works too, but
# FerretDB scans whole collections, so it slows down as files pile up.)
export MESH_FILES_DIR="$data/files"
export MESH_JWT_SECRET=${MESH_JWT_SECRET:-$(head -c 48 /dev/urandom | base64 | tr -d '\n/+=')}
export MESH_LOG_FORMAT=${MESH_LOG_FORMAT:-text}

peers="w1=127.0.0.1:7001,w2=127.0.0.1:7002,w3=127.0.0.1:7003"
for i in 1 2 3; do
	MESH_WORLD_ID=w$i MESH_WORLD_RAFT_ADDR=127.0.0.1:700$i MESH_WORLD_PEERS=$peers \
	MESH_WORLD_DATA="$data/world-$i" MESH_ADMIN_ADDR=127.0.0.1:912$i \
		start "world-$i" "$data/bin/meshd" world
done
for i in 1 2; do
	MESH_ADMIN_ADDR=127.0.0.1:911$i start "api-$i" "$data/bin/meshd" api
done
MESH_ADMIN_ADDR=127.0.0.1:9131 start bots "$data/bin/meshd" bots
MESH_ADMIN_ADDR=127.0.0.1:9141 start proxy "$data/bin/meshd" proxy
for i in 1 2; do
	MESH_ADDR=127.0.0.1:400$i MESH_GATEWAY_ID=gateway-$i start "gateway-$i" "$data/bin/meshd" gateway
done
wait_port 127.0.0.1:4001 gateway-1
wait_port 127.0.0.1:4002 gateway-2

cat <<MSG
cluster: up.
  gateways   http://127.0.0.1:4001  http://127.0.0.1:4002   (REST /api, WebSocket /ws)
  redis      $REDIS_URL
  mongo      $MONGODB_URI
  admin      api :9111 :9112, world :9121-9123, bots :9131, proxy :9141 (/healthz /readyz /metrics)
  data       $data
Ctrl-C stops everything.
MSG

# Run until interrupted. A process that dies is reported and the others go on: the cluster is
# meant to survive the loss of a gateway, an API worker or a world replica (restart it by hand
# from the command in its log's folder, or stop and start the cluster).
set +e
while [ ${#pids[@]} -gt 0 ]; do
	wait -n "${pids[@]}" 2>/dev/null
	alive=()
	for pid in "${pids[@]}"; do
		if kill -0 "$pid" 2>/dev/null && [ "$(ps -o stat= -p "$pid" 2>/dev/null | cut -c1)" != Z ]; then
			alive+=("$pid")
		fi
	done
	if [ ${#alive[@]} -lt ${#pids[@]} ]; then
		echo "cluster: $(( ${#pids[@]} - ${#alive[@]} )) process(es) exited; the others go on (Ctrl-C stops them)" >&2
	fi
	pids=("${alive[@]}")
done
