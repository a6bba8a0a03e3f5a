#!/usr/bin/env bash
# Build the offline base image of one runtime family: a minimal Debian root filesystem
# with the runtime's Debian packages, made by debootstrap (security updates applied) and
# turned into an image by `docker import`. Used where no container registry answers (so
# the public python:3.11-slim or node:18-bookworm-slim cannot be pulled) but a Debian
# package mirror does. invoker/images.py runs it with the parameters of the runtime's
# entry in invoker/runtimes.py; `nimbus images build` is the usual way in.
#
# Usage: build-base.sh TAG FAMILY PACKAGES VERSION PROGRAM [ARG...]
#   TAG       the image to make, e.g. nimbus/base-nodejs:bookworm
#   FAMILY    the runtime family, for messages and the image's comment, e.g. nodejs
#   PACKAGES  comma-separated Debian packages, e.g. nodejs,ca-certificates
#   VERSION   the version PROGRAM must print, or a prefix of it before a dot, e.g. 18
#   PROGRAM [ARG...]  prints the runtime's version, e.g. node -p process.versions.node;
#             PROGRAM is also the image's CMD
# Environment:
#   NIMBUS_DEBIAN_MIRROR    mirror to debootstrap from (default http://deb.debian.org/debian)
#   NIMBUS_DEBIAN_SECURITY  security mirror whose updates are applied after debootstrap
#                           (default http://deb.debian.org/debian-security; empty: none)
#   NIMBUS_DEBIAN_SUITE     suite (default bookworm)
#   NIMBUS_BASE_WORKDIR     parent directory for the temporary root (default /var/tmp)
#   NIMBUS_BASE_DRY_RUN=1   check the arguments and print the plan, build nothing
set -euo pipefail

log() { printf '[build-base] %s\n' "$*"; }
die() { printf '[build-base] ERROR: %s\n' "$*" >&2; exit 1; }

if [ "$#" -lt 5 ]; then
    die "usage: $0 TAG FAMILY PACKAGES VERSION PROGRAM [ARG...] (e.g. nimbus/base-nodejs:bookworm nodejs nodejs,ca-certificates 18 node -p process.versions.node)"
fi
tag="$1" family="$2" packages="$3" expected="$4"
shift 4
check=("$@")
for name in tag family packages expected; do
    [ -n "${!name}" ] || die "$name must not be empty"
done
case "$packages" in
    *[!A-Za-z0-9.+,-]*) die "PACKAGES is a comma-separated list of Debian package names, got '$packages'" ;;
esac
mirror="${NIMBUS_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
security="${NIMBUS_DEBIAN_SECURITY-http://deb.debian.org/debian-security}"
suite="${NIMBUS_DEBIAN_SUITE:-bookworm}"
workparent="${NIMBUS_BASE_WORKDIR:-/var/tmp}"

# The version printed must be VERSION itself or start with "VERSION.".
version_ok() { [ "$1" = "$expected" ] || [ "${1#"$expected".}" != "$1" ]; }

if [ "${NIMBUS_BASE_DRY_RUN:-}" = 1 ]; then
    log "plan: $family base $tag from $suite ($packages) at $mirror"
    log "plan: check ${check[*]} prints $expected or $expected.*; CMD ${check[0]}"
    exit 0
fi

[ "$(id -u)" -eq 0 ] || die "debootstrap needs root; run this script as root"
command -v docker >/dev/null 2>&1 || die "docker CLI not found (run scripts/ensure-docker.sh first)"
docker info >/dev/null 2>&1 || die "the Docker engine does not answer (run scripts/ensure-docker.sh first)"

if ! command -v debootstrap >/dev/null 2>&1; then
    log "installing debootstrap with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q </dev/null || die "apt-get update failed: no Debian mirror reachable?"
    apt-get install -y -q debootstrap </dev/null || die "apt-get install debootstrap failed"
fi

mkdir -p "$workparent"
rootfs="$(mktemp -d "$workparent/nimbus-base.XXXXXX")"
# The root contains device nodes and root-owned files: always remove it, even on failure.
trap 'rm -rf --one-file-system "$rootfs"' EXIT

start=$(date +%s)
log "debootstrap $suite ($packages) from $mirror into $rootfs"
if ! debootstrap --variant=minbase --include="$packages" "$suite" "$rootfs" "$mirror" \
        </dev/null 2>&1 | while IFS= read -r line; do log "debootstrap: $line"; done; then
    die "debootstrap failed (see lines above; is $mirror reachable?)"
fi
log "debootstrap done in $(( $(date +%s) - start )) s, $(du -sh --one-file-system "$rootfs" | cut -f1)"

# debootstrap takes one suite: fixes reach a stable release through its security suite.
if [ -n "$security" ]; then
    log "applying $suite-security updates from $security"
    printf 'deb %s %s main\ndeb %s %s-security main\n' \
        "$mirror" "$suite" "$security" "$suite" > "$rootfs/etc/apt/sources.list"
    if ! { chroot "$rootfs" apt-get update -q \
            && chroot "$rootfs" env DEBIAN_FRONTEND=noninteractive \
                apt-get -y -q --no-install-recommends upgrade; } </dev/null 2>&1 \
            | while IFS= read -r line; do log "apt: $line"; done; then
        log "WARNING: security updates could not be applied; keeping $suite's packages"
    fi
fi
# pipefail makes the `if` above see debootstrap's status; this checks what it left behind.
found="$(chroot "$rootfs" /usr/bin/env PATH=/usr/bin:/bin "${check[@]}" </dev/null)" \
    || die "debootstrap finished but '${check[*]}' does not run in $rootfs"
version_ok "$found" || die "$suite's packages give $family $found, not $expected"
log "$family $found"

log "stripping docs, man pages, locales, apt lists and caches"
rm -rf "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* \
       "$rootfs"/usr/share/locale/* "$rootfs"/usr/share/lintian "$rootfs"/usr/share/linda \
       "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/* "$rootfs"/var/cache/debconf/*-old \
       "$rootfs"/var/log/* "$rootfs"/tmp/* "$rootfs"/var/tmp/*
# The tmp dirs must survive as sticky world-writable directories.
chmod 1777 "$rootfs/tmp" "$rootfs/var/tmp"
log "stripped root: $(du -sh --one-file-system "$rootfs" | cut -f1)"

log "importing into docker as $tag"
tar --numeric-owner -C "$rootfs" -c . \
    | docker import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' \
        --change "CMD [\"${check[0]}\"]" \
        --message "nimbus offline $family base ($suite)" \
        - "$tag" >/dev/null \
    || die "docker import of $tag failed"

found="$(docker run --rm --network none "$tag" "${check[@]}")" \
    || die "the imported image $tag cannot run '${check[*]}'"
version_ok "$found" || die "the imported image $tag has $family $found, not $expected"
log "check: $family $found"
log "built $tag in $(( $(date +%s) - start )) s"
