#!/usr/bin/env bash
# Build the offline base image for the Node.js runtime: a minimal Debian bookworm root
# filesystem with Debian's own nodejs package, made by debootstrap and turned into an
# image by `docker import`. Used where no container registry answers (so
# node:18-bookworm-slim cannot be pulled) but a Debian package mirror does.
#
# Usage: build-base.sh TAG
#   NIMBUS_DEBIAN_MIRROR    mirror to debootstrap from (default http://deb.debian.org/debian)
#   NIMBUS_DEBIAN_SECURITY  security mirror whose updates are applied after debootstrap
#                           (default http://deb.debian.org/debian-security; empty: none)
#   NIMBUS_DEBIAN_SUITE     suite (default bookworm; its nodejs must be major 18)
#   NIMBUS_BASE_WORKDIR     parent directory for the temporary root (default /var/tmp)
set -euo pipefail

log() { printf '[build-base] %s\n' "$*"; }
die() { printf '[build-base] ERROR: %s\n' "$*" >&2; exit 1; }

if [ "$#" -ne 1 ] || [ -z "$1" ]; then
    die "usage: $0 TAG (e.g. nimbus/base-nodejs:bookworm)"
fi
tag="$1"
mirror="${NIMBUS_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
security="${NIMBUS_DEBIAN_SECURITY-http://deb.debian.org/debian-security}"
suite="${NIMBUS_DEBIAN_SUITE:-bookworm}"
workparent="${NIMBUS_BASE_WORKDIR:-/var/tmp}"
# No recommends: nodejs-doc and npm are not wanted; ca-certificates is, for https clients.
packages="nodejs,ca-certificates"
major=18

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
[ -x "$rootfs/usr/bin/node" ] || die "debootstrap finished but $rootfs/usr/bin/node is missing"
log "debootstrap done in $(( $(date +%s) - start )) s, $(du -sh --one-file-system "$rootfs" | cut -f1)"

# debootstrap takes one suite: nodejs fixes reach bookworm through the security suite.
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
log "node $(chroot "$rootfs" /usr/bin/node --version) (Debian nodejs $(chroot "$rootfs" dpkg-query -W -f='${Version}' nodejs))"

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
        --change 'CMD ["node"]' \
        --message "nimbus offline nodejs base ($suite)" \
        - "$tag" >/dev/null \
    || die "docker import of $tag failed"

version="$(docker run --rm --network none "$tag" node -e 'process.stdout.write(process.version)')" \
    || die "the imported image $tag cannot run node"
case "$version" in
    "v$major".*) ;;
    *) die "the imported image $tag has node $version, not major $major" ;;
esac
log "check: node $version"
log "built $tag in $(( $(date +%s) - start )) s"
