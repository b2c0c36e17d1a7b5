#!/usr/bin/env bash
# Container start time against reference points measured side by side, on this machine, now:
#   - a plain fork+exec of the static agent (what any process start costs),
#   - `unshare` with five namespaces running it (the kernel's namespace cost, no cgroups or rootfs),
#   - `runc run` of the same static agent in a minimal bundle (a production runtime),
#   - isolab's container and native backends (`isolab run --workload noop`),
#   - the container's floor, side by side with the container in one interleaved loop
#     (examples/start_floor.rs): clone3 with the container's namespaces into a fresh cgroup, mounts
#     made private, exec of the agent; with the same end point as isolab's start figure (the
#     agent's first instruction, by its own clock), and the container with and without its
#     seccomp filter.
# The three shell references are timed from a shell loop (fork, exec, exit and wait included),
# isolab and the floor from their own timelines (start to agent ready). Absolute times drift with
# the machine's load; compare within one run of this script.
#
#   sudo container-backend/benches/start-references.sh [REPS]
set -euo pipefail
reps="${1:-200}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$here"
if [ "$(id -u)" != 0 ]; then
  echo "run as root: namespaces, cgroups and runc need it" >&2
  exit 1
fi
cargo build --release -q -p bench_harness -p workloads --bins
cargo build --release -q -p container_backend --example start_floor
bin="${CARGO_TARGET_DIR:-$here/target}/x86_64-unknown-linux-gnu/release"
agent="$bin/isolab-agent"
command -v runc >/dev/null || apt-get install -y -q runc >/dev/null

bundle="$(mktemp -d /var/tmp/isolab-runc-XXXXXX)"
trap 'rm -rf "$bundle"' EXIT
mkdir -p "$bundle/rootfs/proc" "$bundle/rootfs/dev" "$bundle/rootfs/sys"
cp "$agent" "$bundle/rootfs/init"
(cd "$bundle" && runc spec)
python3 - "$bundle/config.json" <<'EOF'
import json, sys
p = sys.argv[1]
c = json.load(open(p))
c["process"]["args"] = ["/init", "--exit-immediately"]
c["process"]["terminal"] = False
c["root"]["readonly"] = True
json.dump(c, open(p, "w"))
EOF

per_run() { # N COMMAND...: mean wall time per run, microseconds
  local n=$1; shift
  local s e
  s=$(date +%s%N)
  for _ in $(seq "$n"); do "$@" >/dev/null 2>&1; done
  e=$(date +%s%N)
  echo $(( (e - s) / (n * 1000) ))
}

echo "The container against its floor, same end point (start to the agent's first instruction):"
ISOLAB_AGENT="$agent" "$bin/examples/start_floor" "$reps"
echo "fork+exec of the static agent:      $(per_run "$reps" "$agent" --exit-immediately) µs"
echo "unshare (uts net mnt ipc pid) + it: $(per_run "$reps" unshare -u -n -m -i -p -f "$agent" --exit-immediately) µs"
runc_reps=$(( reps / 4 > 10 ? reps / 4 : 10 ))
cd "$bundle"
echo "runc run of it:                     $(per_run "$runc_reps" runc run "isolab-ref-$$") µs"
cd "$here"
"$bin/isolab" run --backend native,container --workload noop --reps "$reps" --warmup 10 \
  --out /var/tmp/isolab-start-references | grep -E "start_to_ready|teardown|peak"
