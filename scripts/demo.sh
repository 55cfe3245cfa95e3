#!/usr/bin/env bash
# The demo: hfget against the built-in hub simulator on 127.0.0.1 (no internet needed).
# Starts the simulator (throttled per connection, like a busy mirror), downloads a small model with the progress
# display, downloads it again (nothing moves), and has the official huggingface_hub load it offline.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${VENV:-.venv}/bin"
DEMO=.demo
rm -rf "$DEMO" && mkdir -p "$DEMO"
export HF_HUB_CACHE="$PWD/$DEMO/hub"   # keep the demo out of your real cache
export HFGET_KNOWN_MIRRORS=            # the demo talks to the local hub only: no public mirror as a fallback

"$BIN/python" -m hfget.testing --demo --rate 12 --large-mb 48 --url-file "$DEMO/url" 2>"$DEMO/hubsim.log" &
SIM=$!
trap 'kill $SIM 2>/dev/null || true' EXIT
for _ in $(seq 50); do [ -s "$DEMO/url" ] && break; sleep 0.1; done
URL=$(cat "$DEMO/url")

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }

echo "Hub simulator at $URL (file bodies limited to 12 MB/s per connection, like a throttled mirror)."
step "$BIN/hfget" download hfget-demo/tiny-model --source mirror --endpoint "$URL"
step "$BIN/hfget" download hfget-demo/tiny-model --source mirror --endpoint "$URL"
step "$BIN/hfget" download hfget-demo/tiny-model --source mirror --endpoint "$URL" --revision v1.0 --quiet
echo
echo "The official client, offline, reads what hfget wrote (HF_HUB_OFFLINE=1):"
HF_HUB_OFFLINE=1 "$BIN/python" - <<'PY'
import hashlib, os
from huggingface_hub import scan_cache_dir, snapshot_download
for revision in ("main", "v1.0"):
    path = snapshot_download("hfget-demo/tiny-model", revision=revision, local_files_only=True)
    files = sorted(os.path.relpath(os.path.join(r, f), path) for r, _, fs in os.walk(path) for f in fs)
    print(f"  {revision:5} -> {path}")
    print(f"          {len(files)} files: {', '.join(files)}")
for repo in scan_cache_dir().repos:
    revs = ", ".join(f"{r.commit_hash[:8]} ({', '.join(sorted(r.refs)) or 'no ref'})" for r in repo.revisions)
    print(f"  scan_cache_dir: {repo.repo_id}: {repo.size_on_disk / 1e6:.1f} MB on disk, revisions {revs}")
PY
step "$BIN/hfget" cache list --revisions --only huggingface
HFGET_SOURCES=mirror step "$BIN/hfget" diagnose hfget-demo/tiny-model --endpoint "$URL"
echo
echo "Demo cache: $DEMO/hub  (rm -rf $DEMO to remove it)"
