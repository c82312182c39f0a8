#!/usr/bin/env bash
# Prepare a bare Debian 12 (or Ubuntu) host for ai-base: Docker Engine with buildx and
# compose v2, the containerd image store, QEMU binfmt for linux/arm64, Debian's
# docker-registry, debootstrap, buildah (the daemonless builder docs/services.md shows),
# and the Python tools. Idempotent: every step checks
# first, so a second run takes seconds. Starts dockerd when nothing manages it.
# Recipe: shared/docs/offline-host.md (verified on this project's hosts).
# --dry-run: print what this host lacks and would be installed, change nothing.
set -Eeuo pipefail  # -E: the ERR trap below reaches functions (as_root) too

log() { printf '[setup-host %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
# set -e alone exits silently: name the step that failed.
trap 'rc=$?; log "FAILED (exit $rc) at line $LINENO: $BASH_COMMAND"; exit $rc' ERR
dry_run=
case "${1:-}" in
  --dry-run) dry_run=1 ;;
  "") ;;
  *) log "unknown argument ${1}: the only option is --dry-run"; exit 2 ;;
esac
step_start=$SECONDS
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

. /etc/os-release
here=$(cd "$(dirname "$0")" && pwd)
need_pkgs=()
# buildx with the containerd store needs Engine >= 23 (Debian 12's own docker.io is 20.10)
# A docker CLI without dockerd (some images ship only the client) counts as no engine.
engine_major=
if command -v dockerd >/dev/null; then
  engine_major=$(dockerd --version | sed -n 's/^Docker version \([0-9]*\)\..*/\1/p')
fi
if [ -z "$engine_major" ] || [ "$engine_major" -lt 23 ]; then
  [ -n "$engine_major" ] && log "dockerd ${engine_major}.x is too old for multi-platform builds: upgrading"
  need_pkgs+=(docker.io)
fi
[ -x /usr/libexec/docker/cli-plugins/docker-buildx ] || need_pkgs+=(docker-buildx)
[ -x /usr/libexec/docker/cli-plugins/docker-compose ] || need_pkgs+=(docker-compose)
for p in qemu-user-static binfmt-support docker-registry debootstrap apache2-utils curl buildah; do
  dpkg -s "$p" >/dev/null 2>&1 || need_pkgs+=("$p")
done

if [ -n "$dry_run" ]; then
  log "dry run: would install: ${need_pkgs[*]:-nothing}"
  log "dry run: would then merge the containerd store into daemon.json, start dockerd if needed, enable QEMU for the foreign platform, and make the venv (${AIBASE_SETUP_VENV:-.venv})"
  exit 0
fi
if [ ${#need_pkgs[@]} -gt 0 ]; then
  log "installing: ${need_pkgs[*]}"
  if [ "${ID}" = debian ] && [ "${VERSION_CODENAME}" = bookworm ]; then
    # Debian 12's docker.io (20.10) has no buildx; trixie's engine/buildx/compose install
    # cleanly on bookworm for exactly these packages (pinned low, nothing else upgrades).
    if [ ! -f /etc/apt/sources.list.d/trixie.sources ]; then
      as_root tee /etc/apt/sources.list.d/trixie.sources >/dev/null <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
      printf 'Package: *\nPin: release n=trixie\nPin-Priority: 100\n' | as_root tee /etc/apt/preferences.d/trixie-low >/dev/null
    fi
    trixie=(-t trixie)
  else
    trixie=()
  fi
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get update -qq
  docker_pkgs=(); other_pkgs=()
  for p in "${need_pkgs[@]}"; do
    case "$p" in docker.io|docker-buildx|docker-compose) docker_pkgs+=("$p");; *) other_pkgs+=("$p");; esac
  done
  [ ${#docker_pkgs[@]} -eq 0 ] || as_root apt-get install -y -qq --no-install-recommends "${trixie[@]}" "${docker_pkgs[@]}" containerd runc >/dev/null
  [ ${#other_pkgs[@]} -eq 0 ] || as_root apt-get install -y -qq --no-install-recommends "${other_pkgs[@]}" >/dev/null
fi
log "packages ready ($((SECONDS - step_start)) s)"

# Multi-platform builds on the default (docker) buildx driver need the containerd store.
# Merged into daemon.json: runtimes (nvidia), mirrors, data-root... stay; a backup is kept.
daemon_json=${AIBASE_DAEMON_JSON:-/etc/docker/daemon.json}
merged=$(as_root python3 "$here/daemon_json.py" "$daemon_json")  # set -e: a failure stops here
if [ "$merged" = changed ]; then
  log "merged the containerd image store into $daemon_json (backup beside it)"
  if docker info >/dev/null 2>&1; then
    if [ "${AIBASE_SETUP_RESTART_DOCKER:-}" = 1 ] && command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
      as_root systemctl restart docker  # asked for (a CI runner): the new settings take effect
    else
      log "WARNING: dockerd is running with the old settings: restart it (systemctl restart docker) to use the containerd image store"
    fi
  fi
fi

# Debian's docker-registry package starts a registry on *:5000 (every interface) where an
# init system runs it. ai-base runs its own, on 127.0.0.1 only (invoke registry-up).
if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
  as_root systemctl disable --now docker-registry >/dev/null 2>&1 || true
fi
if pgrep -f 'docker-registry serve /etc/docker/registry/config.yml' >/dev/null; then
  as_root pkill -f 'docker-registry serve /etc/docker/registry/config.yml' || true
  log "stopped Debian's docker-registry service (it listens on every interface)"
fi

if ! docker info >/dev/null 2>&1; then
  if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    as_root systemctl start docker
  else
    # No init system (containers, CI sandboxes): start the daemon ourselves.
    log "starting dockerd (log: /var/log/dockerd.log)"
    as_root setsid dockerd >/var/log/dockerd.log 2>&1 < /dev/null &
  fi
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || { log "dockerd did not come up; see /var/log/dockerd.log"; tail -20 /var/log/dockerd.log || true; exit 1; }
fi
server=$(docker version --format '{{.Server.Version}}')
if [ "${server%%.*}" -lt 23 ]; then
  log "the running dockerd is $server, older than the installed engine: restart it (systemctl restart docker, or stop it and rerun this script)"
  exit 1
fi
log "engine: $server ($((SECONDS - step_start)) s)"

# QEMU for the foreign platform only: a native arm64 host emulates amd64, and the reverse.
mountpoint -q /proc/sys/fs/binfmt_misc || as_root mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
case "$(dpkg --print-architecture)" in
  amd64) foreign=qemu-aarch64 ;;
  arm64) foreign=qemu-x86_64 ;;
  *) foreign= ; log "WARNING: $(dpkg --print-architecture) host: no emulation set up" ;;
esac
if [ -n "$foreign" ] && [ ! -e "/proc/sys/fs/binfmt_misc/$foreign" ]; then
  as_root update-binfmts --enable "$foreign"
fi
log "buildx: $(docker buildx version)"
docker buildx inspect --bootstrap default | grep -i platforms

# Python tools: the project venv (AIBASE_SETUP_VENV, default .venv when run from the repo).
if [ -z "${AIBASE_SETUP_VENV+x}" ] && [ -f pyproject.toml ]; then AIBASE_SETUP_VENV=.venv; fi
if [ -n "${AIBASE_SETUP_VENV:-}" ]; then
  venv="${AIBASE_SETUP_VENV}"
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  # the tools' versions come from requirements-dev.txt (Dependabot proposes each bump): a
  # new ruff or zizmor release cannot break `nox -s lint` without a reviewed change
  "$venv/bin/python" -m pip install -q -c requirements-dev.txt uv
  "$venv/bin/uv" pip install -q --python "$venv/bin/python" -c requirements-dev.txt -e ".[dev]"
  log "python tools in $venv ($((SECONDS - step_start)) s)"
fi
log "host ready in $((SECONDS - step_start)) s"
