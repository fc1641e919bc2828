#!/usr/bin/env bash
# The main job: the README's identity and capability walkthrough, then a local DMS network that
# deploys an example ensemble, all in a throw-away user directory (.demo/, or $DEMO_DIR) so it never
# touches ~/.nunet. Each step prints what it did.
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"
export PATH="$PWD/.venv/bin:$PATH"
demo_dir="${DEMO_DIR:-$PWD/.demo}"
rm -rf "$demo_dir"
mkdir -p "$demo_dir"
export DMS_GENERAL_USER_DIR="$demo_dir/nunet"
export DMS_PASSPHRASE="${DMS_PASSPHRASE:-demo passphrase, not for real keys}"
cd "$demo_dir"   # keep any dms_config.json write local to the demo

step() { printf '\n== %s\n' "$*"; }

step "1. identities for the user and the DMS"
nunet cap new user
nunet cap new dms
USER_DID=$(nunet key did user)
DMS_DID=$(nunet key did dms)
echo "user DID: $USER_DID"
echo "dms  DID: $DMS_DID"

step "2. the user's DID becomes a root anchor of the dms context"
nunet cap anchor --context dms --root "$USER_DID"

step "3. the user grants /public, /broadcast and /dms/deployment to the DMS; the DMS keeps it as a provide anchor"
TOKENS=$(nunet cap grant --context user --cap /public --cap /broadcast --cap /dms/deployment \
         --topic /nunet --duration 720h "$DMS_DID")
echo "$TOKENS"
nunet cap anchor --context dms --provide "$TOKENS"

step "4. the DMS delegates /public and /dms/deployment onwards to an orchestrator identity"
nunet key new orchestrator
ORCH_DID=$(nunet key did orchestrator)
nunet cap delegate --context dms --cap /public --cap /dms/deployment --topic /nunet \
      --duration 24h --depth 1 "$ORCH_DID"

step "5. what the dms context holds"
nunet cap list --context dms

echo "keys in $DMS_GENERAL_USER_DIR/key, contexts in $DMS_GENERAL_USER_DIR/cap"

step "6. a local DMS network: 3 real daemons on loopback, the user's DID as root of each;"
echo "   node0 orchestrates, node1 and node2 are onboarded providers"
nunet devnet up --nodes 3 --onboard --dir "$demo_dir/devnet"
trap 'nunet devnet down --dir "$demo_dir/devnet" >/dev/null 2>&1 || true' EXIT
eval "$(nunet devnet env 1 --dir "$demo_dir/devnet")"
NODE2_DID=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['nodes'][2]['did'])" "$demo_dir/devnet/devnet.json")

step "7. through node1: its status, then hello to node2 (found through the DHT), then a broadcast"
nunet actor cmd /public/status
nunet actor cmd /public/hello --dest "$NODE2_DID"
nunet actor cmd /dms/node/peers/list
nunet actor cmd /broadcast/hello --timeout 3s

step "8. the executors of this machine"
nunet executor list

step "9. deploy an ensemble through node0: two WASM tasks, placed on the two providers"
eval "$(nunet devnet env 0 --dir "$demo_dir/devnet")"
nunet validate "$repo/examples/hello.yaml"
nunet deploy -f "$repo/examples/hello.yaml"
if nunet executor list --json | grep -q '"name":"docker","available":true'; then
    step "9b. the same on Docker, with enforced CPU and memory limits"
    nunet deploy -f "$repo/examples/hello-docker.yaml"
    step "9c. two services on two providers, on their private network: the web server serves what it fetched from cache.internal"
    out=$(nunet deploy -f "$repo/examples/web-and-cache.yaml" -t 2m 2>&1) || { echo "$out"; exit 1; }
    echo "$out"
    web_id=$(echo "$out" | grep -o 'deployment [0-9a-f]\{64\}' | head -1 | cut -d' ' -f2)
    nunet deployment manifest "$web_id" >"$demo_dir/web-and-cache.json"
    python3 - "$demo_dir/web-and-cache.json" <<'PY'
import json, sys, time, urllib.request
allocations = json.load(open(sys.argv[1]))["allocations"]
for name, a in sorted(allocations.items()):
    print(f"  {name}: {a['priv_addr']} ({a['dns_name']}), published ports {a.get('ports', {})}")
port = next(iter(allocations["web"]["ports"]))
for _ in range(100):
    try:
        page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).read().decode()
        break
    except OSError:
        time.sleep(0.2)
else:
    sys.exit(f"nothing answered on port {port}")
print(f"GET http://127.0.0.1:{port}/ -> {page.strip()}")
PY
    nunet deployment shutdown "$web_id"
fi

step "10. the deployments node0 orchestrated"
nunet get deployments

step "done: the devnet stops now; rerun with: nunet devnet up --dir $demo_dir/devnet"
