#!/usr/bin/env bash
# Builds nbpool-test/jupyter:latest: real Jupyter Notebook + ipykernel from
# Debian bookworm packages, without any registry. See README.md.
#
#   testdata/images/jupyter/build.sh          # build, or no-op if up to date
#   FORCE=1 testdata/images/jupyter/build.sh  # rebuild even if up to date
#
# Needs root (debootstrap, chroot, mount) and a working `docker`.
set -euo pipefail

IMAGE=nbpool-test/jupyter:latest
SUITE=bookworm
LABEL=org.nbpool.recipe
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# Everything that determines the image content. README.md is not part of it.
RECIPE_FILES=(build.sh packages.txt)

START=$SECONDS
log() { printf '[jupyter-image +%3ds] %s\n' "$((SECONDS - START))" "$*"; }
die() { printf '[jupyter-image] ERROR: %s\n' "$*" >&2; exit 1; }

# --- 1. recipe hash / up-to-date check --------------------------------------
# One build at a time (e.g. under make -j); a waiter then finds it up to date.
exec 9>"${TMPDIR:-/tmp}/nbpool-jupyter-image.lock"
flock 9
RECIPE=$(cd "$HERE" && sha256sum -- "${RECIPE_FILES[@]}" | sha256sum | cut -d' ' -f1)
current=$(docker image inspect --format "{{ index .Config.Labels \"$LABEL\" }}" "$IMAGE" 2>/dev/null || true)
if [[ "${FORCE:-0}" != 1 && "$current" == "$RECIPE" ]]; then
	echo "[jupyter-image] $IMAGE is up to date (recipe ${RECIPE:0:12})"
	exit 0
fi
old_id=$(docker image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)
log "building $IMAGE (recipe ${RECIPE:0:12})"

[[ $(id -u) == 0 ]] || die "must run as root (debootstrap, chroot, mount)"

# --- 2. debootstrap ----------------------------------------------------------
export DEBIAN_FRONTEND=noninteractive
if ! command -v debootstrap >/dev/null 2>&1; then
	log "installing debootstrap"
	if ! apt-get install -y -q debootstrap >/dev/null; then
		apt-get update -q >/dev/null
		apt-get install -y -q debootstrap >/dev/null
	fi
fi

# --- 3. Debian mirror from this machine's apt sources ------------------------
# Prints candidate URIs for "deb ... bookworm ... main", deb822 first.
candidate_mirrors() {
	local f
	for f in /etc/apt/sources.list.d/*.sources; do
		[[ -f "$f" ]] || continue
		awk -v suite="$SUITE" '
			function has(list, w,   n, a, i) { n = split(list, a, /[ \t]+/); for (i = 1; i <= n; i++) if (a[i] == w) return 1; return 0 }
			function flush() {
				if (has(f["types"], "deb") && has(f["suites"], suite) && has(f["components"], "main") && tolower(f["enabled"]) != "no") {
					sub(/^[ \t]+/, "", f["uris"]); split(f["uris"], u, /[ \t]+/); if (u[1] != "") print u[1]
				}
				delete f; key = ""
			}
			/^[ \t]*#/ { next }
			/^[ \t]*$/ { flush(); next }
			/^[ \t]/ { if (key != "") f[key] = f[key] " " $0; next }
			{ i = index($0, ":"); if (!i) next
			  key = tolower(substr($0, 1, i - 1)); v = substr($0, i + 1)
			  gsub(/^[ \t]+|[ \t]+$/, "", v); f[key] = v }
			END { flush() }
		' "$f"
	done
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[[ -f "$f" ]] || continue
		awk -v suite="$SUITE" '
			{ sub(/#.*/, ""); gsub(/\[[^]]*\]/, "") }
			$1 == "deb" && $3 == suite { for (i = 4; i <= NF; i++) if ($i == "main") { print $2; break } }
		' "$f"
	done
}

# A candidate counts only if it really is a Debian archive for the suite
# (third-party repos such as download.docker.com also publish a "bookworm").
MIRROR=""
mapfile -t candidates < <(candidate_mirrors | sed 's:/*$::' | awk '!seen[$0]++')
for uri in "${candidates[@]}"; do
	case "$uri" in http://* | https://* | file://*) ;; *) continue ;; esac
	release=$(curl -fsSL --max-time 30 "$uri/dists/$SUITE/Release" 2>/dev/null || true)
	if grep -qx 'Origin: Debian' <<<"$release"; then
		MIRROR=$uri
		break
	fi
	log "skipping $uri (no Debian $SUITE Release there)"
done
[[ -n "$MIRROR" ]] || die "no Debian '$SUITE' mirror found in /etc/apt/sources.list or /etc/apt/sources.list.d/ (need a 'deb <url> $SUITE main' line or a deb822 entry with Suites: $SUITE); candidates were: ${candidates[*]:-none}"
log "mirror: $MIRROR"

# --- 4. rootfs -------------------------------------------------------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/nbpool-jupyter.XXXXXX")
ROOTFS=$WORK/rootfs
cleanup() {
	local m left
	# Unmount everything below $WORK, deepest first (debootstrap may leave
	# proc/sys mounted if it fails half-way).
	for m in $(awk -v w="$WORK/" 'index($2, w) == 1 { print $2 }' /proc/mounts | sort -r); do
		umount "$m" 2>/dev/null || umount -l "$m" || true
	done
	left=$(awk -v w="$WORK/" 'index($2, w) == 1' /proc/mounts)
	if [[ -n "$left" ]]; then
		echo "[jupyter-image] WARNING: mounts remain under $WORK; not deleting it" >&2
	else
		rm -rf --one-file-system "$WORK"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log "debootstrap --variant=minbase $SUITE (into $WORK)"
if ! debootstrap --variant=minbase "$SUITE" "$ROOTFS" "$MIRROR" >"$WORK/debootstrap.log" 2>&1; then
	tail -n 30 "$WORK/debootstrap.log" >&2
	[[ -f "$ROOTFS/debootstrap/debootstrap.log" ]] && tail -n 30 "$ROOTFS/debootstrap/debootstrap.log" >&2
	die "debootstrap failed"
fi
log "debootstrap done"

# Never start services from maintainer scripts.
printf '#!/bin/sh\nexit 101\n' >"$ROOTFS/usr/sbin/policy-rc.d"
chmod 755 "$ROOTFS/usr/sbin/policy-rc.d"
# Keep docs, man pages and translations out of the image (copyrights stay).
cat >"$ROOTFS/etc/dpkg/dpkg.cfg.d/01-nbpool-nodoc" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
cat >"$ROOTFS/etc/apt/apt.conf.d/01-nbpool-clean" <<'EOF'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Acquire::Languages "none";
EOF
cp -L /etc/resolv.conf "$ROOTFS/etc/resolv.conf"
mount -t proc proc "$ROOTFS/proc"

mapfile -t PACKAGES < <(sed 's/#.*//' "$HERE/packages.txt" | tr -s ' \t' '\n' | sed '/^$/d')
in_chroot() {
	chroot "$ROOTFS" /usr/bin/env -i \
		PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
		HOME=/root LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive "$@"
}
log "apt-get install ${PACKAGES[*]}"
if ! { in_chroot apt-get update -q && in_chroot apt-get install -y -q --no-install-recommends "${PACKAGES[@]}"; } >"$WORK/apt.log" 2>&1; then
	tail -n 40 "$WORK/apt.log" >&2
	die "apt-get in chroot failed"
fi
log "installed $(in_chroot dpkg-query -W -f '.\n' | wc -l) packages"

log "user jovyan (1000:100), cleanup"
in_chroot useradd --create-home --home-dir /home/jovyan --uid 1000 --gid 100 --shell /bin/bash jovyan
in_chroot apt-get clean
umount "$ROOTFS/proc"
rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/cache/apt/*.bin \
	"$ROOTFS"/var/cache/debconf/*-old "$ROOTFS"/var/lib/dpkg/*-old \
	"$ROOTFS"/var/log/* "$ROOTFS"/tmp/* "$ROOTFS"/var/tmp/* "$ROOTFS"/root/.cache \
	"$ROOTFS"/etc/resolv.conf "$ROOTFS"/debootstrap
# Docs and man pages from the debootstrap stage (installed before the excludes).
if [[ -d "$ROOTFS/usr/share/doc" ]]; then
	find "$ROOTFS/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
	find "$ROOTFS/usr/share/doc" -mindepth 1 -type d -empty -delete
fi
rm -rf "$ROOTFS"/usr/share/man/* "$ROOTFS"/usr/share/info/* "$ROOTFS"/usr/share/groff/* \
	"$ROOTFS"/usr/share/lintian/* "$ROOTFS"/usr/share/linda/*
if [[ -d "$ROOTFS/usr/share/locale" ]]; then
	find "$ROOTFS/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
fi
echo localhost >"$ROOTFS/etc/hostname"

# --- 5. import ---------------------------------------------------------------
log "docker import"
tar --numeric-owner -C "$ROOTFS" -c . | docker import \
	--change 'CMD ["jupyter", "notebook", "--no-browser", "--ip=0.0.0.0", "--port=8888"]' \
	--change 'USER jovyan' \
	--change 'WORKDIR /home/jovyan' \
	--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
	--change 'ENV HOME=/home/jovyan' \
	--change 'ENV SHELL=/bin/bash' \
	--change 'ENV LANG=C.UTF-8' \
	--change 'EXPOSE 8888' \
	--change "LABEL $LABEL=$RECIPE" \
	--message "nbpool test image: Debian $SUITE jupyter-notebook + ipykernel" \
	- "$IMAGE" >/dev/null

new_id=$(docker image inspect --format '{{.Id}}' "$IMAGE")
if [[ -n "$old_id" && "$old_id" != "$new_id" ]]; then
	docker image rm "$old_id" >/dev/null 2>&1 || log "note: previous image ${old_id:7:12} still in use, left in place"
fi
cleanup
trap - EXIT
size=$(docker image inspect --format '{{.Size}}' "$IMAGE")
log "done: $IMAGE ${new_id:7:12}, $((size / 1000000)) MB, built in $((SECONDS - START))s"
