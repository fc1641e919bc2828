#!/usr/bin/env bash
# A Docker engine and the test image, for the docker executor's tests and benchmark. Idempotent.
#
#   scripts/docker.sh          as root on Debian: install docker.io and busybox-static if missing,
#                              start dockerd in the background if no engine answers, build the image
#   scripts/docker.sh image    only (re)build the test image (needs a running engine)
#
# No registry is reachable in CI, so nothing may be pulled: the image nunet-test/busybox:latest is
# made with `docker import` from a root filesystem holding Debian's static busybox, a symlink per
# applet in /bin (/usr/bin, /sbin, /usr/sbin point there), /tmp, /root and /etc/passwd|group.
# It carries the label below; an image without it (or an older version) is rebuilt, so tests can
# rely on every applet being there.
set -euo pipefail

IMAGE="nunet-test/busybox:latest"
IMAGE_LABEL="org.nunet.test-image"
IMAGE_VERSION="2"
DOCKERD_LOG="${DOCKERD_LOG:-/var/log/dockerd-nunet.log}"
WAIT_SECONDS="${DOCKER_WAIT_SECONDS:-30}"

say() { echo "docker.sh: $*"; }
die() { echo "docker.sh: error: $*" >&2; exit 1; }

install_packages() {
    local need=()
    # The docker CLI alone (some images ship it) is not an engine: look for dockerd.
    command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
    dpkg -s busybox-static >/dev/null 2>&1 || need+=(busybox-static)
    [ ${#need[@]} -eq 0 ] && return 0
    [ "$(id -u)" -eq 0 ] || die "installing ${need[*]} needs root"
    say "installing Debian packages: ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
}

start_engine() {
    if docker info >/dev/null 2>&1; then
        return 0
    fi
    [ "$(id -u)" -eq 0 ] || die "no Docker engine answers and starting dockerd needs root"
    if ! pgrep -x dockerd >/dev/null 2>&1; then
        say "starting dockerd (log: $DOCKERD_LOG)"
        mkdir -p "$(dirname "$DOCKERD_LOG")"
        nohup dockerd >>"$DOCKERD_LOG" 2>&1 </dev/null &
    fi
    for _ in $(seq "$WAIT_SECONDS"); do
        if docker info >/dev/null 2>&1; then
            say "engine is up ($(docker version --format '{{.Server.Version}}'))"
            return 0
        fi
        sleep 1
    done
    echo "--- last lines of $DOCKERD_LOG:" >&2
    tail -n 20 "$DOCKERD_LOG" >&2 || true
    die "dockerd did not answer within ${WAIT_SECONDS}s (see $DOCKERD_LOG)"
}

image_is_current() {
    local found
    found=$(docker image inspect --format "{{ index .Config.Labels \"$IMAGE_LABEL\" }}" "$IMAGE" \
        2>/dev/null) || return 1
    [ "$found" = "$IMAGE_VERSION" ]
}

build_image() {
    if image_is_current; then
        say "image $IMAGE is present"
        return 0
    fi
    local busybox
    busybox=$(command -v busybox) || die "busybox not found (install busybox-static)"
    if ldd "$busybox" >/dev/null 2>&1; then
        die "$busybox is dynamically linked; install busybox-static"
    fi
    local root
    root=$(mktemp -d)
    mkdir -p "$root/bin" "$root/usr" "$root/etc" "$root/root" "$root/tmp" "$root/var/tmp"
    chmod 1777 "$root/tmp" "$root/var/tmp"
    cp "$busybox" "$root/bin/busybox"
    for applet in $("$root/bin/busybox" --list); do
        [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
    done
    ln -s ../bin "$root/usr/bin"
    ln -s bin "$root/sbin"
    ln -s ../bin "$root/usr/sbin"
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' \
        >"$root/etc/passwd"
    printf 'root:x:0:\nvideo:x:44:\nnogroup:x:65534:\n' >"$root/etc/group"
    say "building $IMAGE from $busybox"
    tar -C "$root" -c . | docker import \
        --change "LABEL $IMAGE_LABEL=$IMAGE_VERSION" \
        --change 'ENV PATH=/bin:/usr/bin:/sbin:/usr/sbin' \
        --change 'CMD ["/bin/sh"]' \
        - "$IMAGE" >/dev/null || { rm -rf "$root"; die "docker import failed"; }
    rm -rf "$root"
    image_is_current || die "built $IMAGE but it does not carry $IMAGE_LABEL=$IMAGE_VERSION"
    say "image $IMAGE built"
}

case "${1:-all}" in
    image)
        command -v docker >/dev/null 2>&1 || die "the docker CLI is not installed"
        docker info >/dev/null 2>&1 || die "no Docker engine answers (run scripts/docker.sh as root)"
        build_image
        ;;
    all)
        install_packages
        start_engine
        build_image
        ;;
    *)
        die "usage: $0 [image]"
        ;;
esac
