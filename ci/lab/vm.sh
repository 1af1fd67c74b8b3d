#!/usr/bin/env bash
# ci/lab/vm.sh - the rdmakit SoftRoCE lab: run one command in a throwaway VM that has kernel RDMA.
#
# Usage: vm.sh [-t SECS] [-w DIR]... [-e NAME=VALUE]... [-v] -- CMD [ARG...]
#   -t SECS        stop the VM after SECS seconds, boot included (default 900); exit status 124
#   -w DIR         share host DIR read-write at the same path in the guest (repeatable)
#   -e NAME=VALUE  set NAME for CMD in the guest (repeatable; wins over everything else)
#   -v             copy the guest console (kernel and init messages) to stderr as it comes
#
# The VM is qemu (TCG: no KVM needed) booting Debian 12's stock kernel. Its root file system is
# the host's / shared read-only over virtio-9p under a tmpfs overlay: CMD sees the host's files
# and binaries (a `go test` binary in the host's /tmp included), and whatever it writes outside
# the -w directories is thrown away with the VM. CMD runs as root in the caller's directory with
# stdin from /dev/null; its stdout and stderr come back on this script's stdout and stderr.
# Before CMD starts the guest has loaded rdma_rxe, ib_uverbs, rdma_ucm, ib_umad, veth,
# mpls_router and mpls_iptunnel, created veth0/veth1 (10.77.0.1/24 and fd77::1/64 on veth0),
# created rxe0 on veth0, waited for its port to be ACTIVE and lifted RLIMIT_MEMLOCK. The VM has no
# network card: nothing leaves the machine.
#
# CMD's environment: PATH from the host, HOME=/root, every host variable whose name starts with
# GO or RDMAKIT_ (but not RDMAKIT_LAB_, the knobs below), then RDMAKIT_LAB=1 RDMAKIT_DEVICE=rxe0
# RDMAKIT_NETDEV=veth0 RDMAKIT_IP=10.77.0.1 RDMAKIT_IP6=fd77::1, then the -e settings.
#
# As `go test -exec "$PWD/ci/lab/vm.sh --" -p 1 ./pkg/...` every test binary boots its own VM;
# the directory go test builds it in is shared read-write, so coverage data comes back.
#
# Exit status: CMD's; 124 when the time ran out; 125 when the VM failed (the console log is kept
# and its tail printed); 2 on a usage error.
#
# Knobs (environment):
#   RDMAKIT_LAB_CACHE       where the kernel .deb, kernel, initramfs and failed consoles are kept
#                           (default: <repo>/.cache/lab when this script sits in the rdmakit repo,
#                           else ${XDG_CACHE_HOME:-~/.cache}/rdmakit/lab)
#   RDMAKIT_LAB_KERNEL_PKG  kernel package, e.g. linux-image-6.1.0-56-amd64 (default: the one
#                           linux-image-amd64 depends on); fetched once with `apt-get download`
#   RDMAKIT_LAB_KERNEL_DEB  a linux-image-*.deb file to use instead
#   RDMAKIT_LAB_MODULES     more kernel modules to load before CMD
#   RDMAKIT_LAB_TIMEOUT     default for -t
#   RDMAKIT_LAB_MEM (2G)  RDMAKIT_LAB_SMP (2)  RDMAKIT_LAB_ACCEL (qemu -accel: tcg,tb-size=256)
#   RDMAKIT_LAB_APPEND      more kernel command line, e.g. for debugging the guest
#
# Host needs: bash, coreutils, qemu-system-x86, busybox-static, dpkg-deb, xz-utils, iproute2
# (`ip` and `rdma`, run in the guest), apt-get on the first run; `ci/deps.sh lab` installs them.
set -euo pipefail

prog=lab
self=$(readlink -f -- "$0")
here=$(dirname -- "$self")

warn() { echo "$prog: $*" >&2; }
die() { warn "$*"; exit 125; }
usage_error() { warn "$*"; warn "usage: vm.sh [-t SECS] [-w DIR]... [-e NAME=VALUE]... [-v] -- CMD [ARG...]"; exit 2; }
usage() { sed -n '/^# Usage:/,/^set -euo/{/^#/s/^# \{0,1\}//p}' "$self"; exit 0; }

# ------------------------------------------------------------------ arguments and knobs
timeout_s=${RDMAKIT_LAB_TIMEOUT:-900}
verbose=0
rw_dirs=()
set_env=()
while [ $# -gt 0 ]; do
  case $1 in
    -t) [ $# -ge 2 ] || usage_error "-t wants a number of seconds"; timeout_s=$2; shift 2 ;;
    -w) [ $# -ge 2 ] || usage_error "-w wants a directory"
        d=$(readlink -f -- "$2") && [ -d "$d" ] || usage_error "-w $2: not a directory"
        rw_dirs+=("$d"); shift 2 ;;
    -e) [ $# -ge 2 ] || usage_error "-e wants NAME=VALUE"
        [[ $2 =~ ^[A-Za-z_][A-Za-z0-9_]*= ]] || usage_error "-e $2: want NAME=VALUE"
        set_env+=("$2"); shift 2 ;;
    -v) verbose=1; shift ;;
    -h|-help|--help) usage ;;
    --) shift; break ;;
    -*) usage_error "unknown option $1" ;;
    *) break ;;
  esac
done
[ $# -gt 0 ] || usage_error "no command given"
[[ $timeout_s =~ ^[1-9][0-9]*$ ]] || usage_error "-t $timeout_s: want whole seconds > 0"
for d in ${rw_dirs[@]+"${rw_dirs[@]}"}; do
  [[ $d != *$'\n'* ]] || usage_error "-w: directory names with newlines are not supported"
done

mem=${RDMAKIT_LAB_MEM:-2G}
smp=${RDMAKIT_LAB_SMP:-2}
accel=${RDMAKIT_LAB_ACCEL:-tcg,tb-size=256}
busybox=/bin/busybox

# Modules: boot ones reach the host's root; lab ones are loaded before CMD; spare ones only go
# into the initramfs, for a `modprobe` in CMD. Their dependencies come along.
boot_modules="virtio_pci 9pnet_virtio 9p overlay"
lab_modules="crc32_generic rdma_rxe ib_uverbs rdma_ucm ib_umad veth mpls_router mpls_iptunnel ${RDMAKIT_LAB_MODULES:-}"
spare_modules="dummy"

if [ -n "${RDMAKIT_LAB_CACHE:-}" ]; then
  cache=$RDMAKIT_LAB_CACHE
elif [ -f "$here/../../go.mod" ] && grep -q '^module github.com/rdmakit/rdmakit$' "$here/../../go.mod"; then
  cache=$(cd "$here/../.." && pwd)/.cache/lab
else
  cache=${XDG_CACHE_HOME:-$HOME/.cache}/rdmakit/lab
fi

# ------------------------------------------------------------------ host tools
command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 is missing (ci/deps.sh lab)"
command -v dpkg-deb >/dev/null || die "dpkg-deb is missing"
[ -x "$busybox" ] || die "$busybox is missing (ci/deps.sh lab installs busybox-static)"
! ldd "$busybox" >/dev/null 2>&1 || die "$busybox is not static (ci/deps.sh lab installs busybox-static)"
command -v ip >/dev/null && command -v rdma >/dev/null || die "ip or rdma is missing (apt-get install iproute2)"

mkdir -p "$cache/deb" "$cache/boot" "$cache/logs" || die "cannot create the cache $cache"
[ -e "$cache/.gitignore" ] || echo '*' > "$cache/.gitignore"

# ------------------------------------------------------------------ kernel package
# find_deb PKG: the newest cached .deb of PKG, if any
find_deb() { ls -1 "$cache/deb/${1}_"*.deb 2>/dev/null | sort -V | tail -n 1; }

kernel_deb() {
  if [ -n "${RDMAKIT_LAB_KERNEL_DEB:-}" ]; then
    [ -f "$RDMAKIT_LAB_KERNEL_DEB" ] || die "RDMAKIT_LAB_KERNEL_DEB=$RDMAKIT_LAB_KERNEL_DEB: no such file"
    echo "$RDMAKIT_LAB_KERNEL_DEB"; return
  fi
  local pkg=${RDMAKIT_LAB_KERNEL_PKG:-} deb memo=$cache/deb/.default-kernel
  if [ -z "$pkg" ] && command -v apt-cache >/dev/null; then
    # apt-cache takes a second: ask it again only after the package lists changed
    if [ -s "$memo" ] && [ -z "$(find /var/lib/apt/lists -newer "$memo" -print -quit 2>/dev/null)" ]; then
      pkg=$(cat "$memo")
    else
      pkg=$(apt-cache depends linux-image-amd64 2>/dev/null |
        awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2; exit }') || true
      [ -z "$pkg" ] || echo "$pkg" > "$memo"
    fi
  fi
  if [ -z "$pkg" ]; then  # no apt lists: take what an earlier run downloaded
    deb=$(find_deb 'linux-image-*')
    [ -n "$deb" ] || die "cannot tell which kernel to use: run apt-get update or set RDMAKIT_LAB_KERNEL_PKG"
    echo "$deb"; return
  fi
  deb=$(find_deb "$pkg")
  if [ -z "$deb" ]; then
    command -v apt-get >/dev/null || die "apt-get is missing: set RDMAKIT_LAB_KERNEL_DEB"
    warn "downloading $pkg into $cache/deb (once) ..."
    local sandbox=()
    [ "$(id -u)" != 0 ] || sandbox=(-o APT::Sandbox::User=root)
    (cd "$cache/deb" && apt-get download -qq ${sandbox[@]+"${sandbox[@]}"} "$pkg") >&2 || true
    deb=$(find_deb "$pkg")
    # keep this one and the one before it, as a fallback
    [ -z "$deb" ] || ls -1t "$cache/deb"/linux-image-*.deb | tail -n +3 | xargs -r rm -f
  fi
  if [ -z "$deb" ]; then  # e.g. the security archive dropped it: fall back to any cached kernel
    deb=$(find_deb 'linux-image-*')
    [ -n "$deb" ] || die "cannot download $pkg (apt-get update? or set RDMAKIT_LAB_KERNEL_PKG/_DEB)"
    warn "cannot download $pkg, using $(basename "$deb")"
  fi
  echo "$deb"
}

# ------------------------------------------------------------------ guest /init
# Runs as PID 1 under busybox sh. The run share (host tag "run") carries the settings in and the
# exit status out; CMD's stdout and stderr leave on ttyS1 and ttyS2, the console is ttyS0.
read -r -d '' guest_init <<'EOF' || true
#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev /sbin /usr/bin /usr/sbin /tmp /share /host /rw /root
/bin/busybox --install -s
export PATH=/sbin:/usr/sbin:/bin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
say() { echo "lab-init[$(cut -d' ' -f1 /proc/uptime)]: $*"; }
die() {
  say "error: $*"
  echo "$*" > /share/init-error
  poweroff -f; sleep 10
}
# warn: on the console and on the host's stderr
warn() { say "warning: $*"; echo "lab: warning: $*" > /dev/ttyS2; }
stty -F /dev/ttyS1 raw -echo 115200 && stty -F /dev/ttyS2 raw -echo 115200 || die "no ttyS1 or ttyS2"
p9=trans=virtio,version=9p2000.L,msize=262144
say "kernel $(uname -r) is up"
for m in @BOOT_MODULES@; do modprobe "$m" || die "cannot load $m"; done
mount -t 9p -o $p9 run /share || die "cannot mount the run share"
mount -t 9p -o $p9,ro,cache=loose host /host || die "cannot mount the host's / over 9p"
mount -t tmpfs -o mode=755 tmpfs /rw && mkdir /rw/upper /rw/work || die "tmpfs"
R=/root
mount -t overlay -o lowerdir=/host,upperdir=/rw/upper,workdir=/rw/work overlay $R ||
  die "cannot mount the overlay root"
mount -t proc proc $R/proc && mount -t sysfs sysfs $R/sys && mount -t devtmpfs devtmpfs $R/dev &&
  mkdir -p $R/dev/pts $R/dev/shm && mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts $R/dev/pts &&
  mount -t tmpfs -o mode=1777 tmpfs $R/dev/shm && mount -t tmpfs -o mode=755 tmpfs $R/run ||
  die "cannot mount /proc, /sys, /dev or /run"
i=0
while IFS= read -r d; do
  [ -n "$d" ] || continue
  mkdir -p "$R$d" && mount -t 9p -o $p9 rw$i "$R$d" || die "cannot mount the -w share $d"
  i=$((i+1))
done < /share/rw-dirs
# CMD's modprobe & co. are this busybox, over this initramfs' modules (the host may have none)
mkdir -p $R/lib/modules $R/run/lab && mount --bind /lib/modules $R/lib/modules &&
  cp /bin/busybox $R/run/lab/busybox && cp /share/cmd.sh $R/run/lab/cmd.sh || die "cannot set up /run/lab"
for t in modprobe insmod rmmod lsmod modinfo depmod; do
  for d in $R/usr/sbin $R/sbin; do ln -sf /run/lab/busybox $d/$t; done
done
say "root file system ready"
for m in $(cat /share/modules); do modprobe "$m" || warn "cannot load module $m"; done
[ -d /sys/module/rdma_rxe ] || die "rdma_rxe did not load"
hostname rdmakit-lab
say "modules loaded"
# the host's iproute2, one process for all of ip's work: every exec is slow under TCG
printf '%s\n' 'link set lo up' 'link add veth0 type veth peer name veth1' \
  'addr add 10.77.0.1/24 dev veth0' 'addr add fd77::1/64 dev veth0 nodad' \
  'link set veth1 up' 'link set veth0 up' > /tmp/ip.batch
chroot $R /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin /bin/sh -ec '
  ip -batch - && rdma link add rxe0 type rxe netdev veth0' < /tmp/ip.batch ||
  die "cannot set up veth0 and rxe0"
n=0
until grep -qs ACTIVE /sys/class/infiniband/rxe0/ports/1/state; do
  n=$((n+1)); [ $n -le 300 ] || die "rxe0 is not ACTIVE after 30 s"; sleep 0.1
done
say "rxe0 is ACTIVE, starting the command"
# CMD writes into pipes, not into the serial ports: it sees no terminal.
mkfifo /tmp/out /tmp/err
cat /tmp/out > /dev/ttyS1 & out=$!
cat /tmp/err > /dev/ttyS2 & err=$!
chroot $R /usr/bin/env -i /bin/bash /run/lab/cmd.sh < /dev/null > /tmp/out 2> /tmp/err
rc=$?
say "the command exited with status $rc"
# End what CMD left running, so that the pipes close and the serial ports drain.
for p in /proc/[0-9]*; do
  p=${p#/proc/}
  case " 1 $out $err " in *" $p "*) continue ;; esac
  readlink /proc/$p/exe > /dev/null 2>&1 && kill -9 $p 2> /dev/null
done
wait $out $err
echo $rc > /share/rc
poweroff -f; sleep 10
EOF
guest_init=${guest_init//@BOOT_MODULES@/$boot_modules}

# ------------------------------------------------------------------ kernel and initramfs
# unpack FILE: FILE's content, decompressed by its suffix
unpack() {
  case $1 in
    *.xz) xz -dc -- "$1" ;;
    *.gz) gzip -dc -- "$1" ;;
    *.zst) zstd -qdc -- "$1" ;;
    *) cat -- "$1" ;;
  esac
}

# module_closure DIR NAME...: module files (relative to DIR) of NAMEs and all they depend on
module_closure() {
  local dir=$1; shift
  local -A path=() seen=()
  local f n m deps
  while IFS= read -r f; do
    n=${f##*/}; n=${n%%.ko*}; path[${n//-/_}]=$f
  done < <(cd "$dir" && find kernel -name '*.ko*')
  local queue=("$@")
  while [ ${#queue[@]} -gt 0 ]; do
    m=${queue[0]//-/_}; queue=("${queue[@]:1}")
    [ -n "${seen[$m]:-}" ] && continue
    seen[$m]=1
    if [ -z "${path[$m]:-}" ]; then
      grep -qE "/${m//_/[-_]}\.ko\$" "$dir/modules.builtin" 2>/dev/null ||
        warn "warning: the kernel has no module $m"
      continue
    fi
    echo "${path[$m]}"
    deps=$(unpack "$dir/${path[$m]}" | tr '\0' '\n' | sed -n 's/^depends=//p' | head -n 1) ||
      die "cannot read ${path[$m]}"
    IFS=, read -ra deps <<< "$deps"
    queue+=(${deps[@]+"${deps[@]}"})
  done
}

# bzimage_to_elf BZIMAGE OUT: the uncompressed vmlinux inside BZIMAGE. qemu boots it through its
# PVH entry point, which skips the decompression in the guest (seconds under TCG).
bzimage_to_elf() {
  local setup off len magic
  setup=$(od -An -tu1 -j $((0x1f1)) -N1 "$1" | tr -d ' ')
  off=$(od -An -tu4 -j $((0x248)) -N4 "$1" | tr -d ' ')
  len=$(od -An -tu4 -j $((0x24c)) -N4 "$1" | tr -d ' ')
  [ "$setup" != 0 ] || setup=4
  off=$(( (setup + 1) * 512 + off ))
  magic=$(od -An -tx1 -j "$off" -N4 "$1" | tr -d ' ')
  case $magic in
    fd377a58) tail -c +$((off + 1)) "$1" | head -c "$len" | xz -dcq --single-stream > "$2" ;;
    28b52ffd) tail -c +$((off + 1)) "$1" | head -c "$len" | zstd -dcq > "$2" ;;
    1f8b*)    tail -c +$((off + 1)) "$1" | head -c "$len" | gzip -dcq > "$2" ;;
    *) return 1 ;;
  esac 2>/dev/null || [ -s "$2" ]  # xz & co. complain about the size word after the payload
  [ "$(head -c 4 "$2" | od -An -tx1 | tr -d ' ')" = 7f454c46 ]
}

# build_boot DEB OUT: unpack the kernel package and write OUT/kernel and OUT/initramfs
build_boot() {
  local deb=$1 out=$2 tmp kv m f dst files
  tmp=$(mktemp -d "$cache/boot/.build.XXXXXX")
  build_tmp=$tmp
  dpkg-deb -x "$deb" "$tmp/deb" || die "cannot unpack $deb"
  kv=$(ls "$tmp/deb/lib/modules" 2>/dev/null | head -n 1)
  [ -n "$kv" ] && [ -f "$tmp/deb/boot/vmlinuz-$kv" ] || die "$deb holds no kernel and modules"
  m=$tmp/deb/lib/modules/$kv
  local init=$tmp/initramfs
  mkdir -p "$init/bin" "$init/lib/modules/$kv"
  cp "$busybox" "$init/bin/busybox"
  printf '%s\n' "$guest_init" > "$init/init"
  chmod 755 "$init/init"
  files=$(module_closure "$m" $boot_modules $lab_modules $spare_modules)
  # decompressed here, so that the guest's busybox needs no xz
  for f in $files; do
    dst=$init/lib/modules/$kv/${f%.ko*}.ko
    mkdir -p "$(dirname "$dst")"
    unpack "$m/$f" > "$dst" || die "cannot unpack $f"
  done
  cp "$m/modules.builtin" "$m/modules.order" "$init/lib/modules/$kv/" 2>/dev/null || true
  "$busybox" depmod -b "$init" "$kv" || die "depmod failed"
  # uncompressed: qemu loads it as is and the guest does not spend time unpacking
  (cd "$init" && find . | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0) > "$tmp/initramfs.cpio" ||
    die "cpio failed"
  if grep -qx 'CONFIG_PVH=y' "$tmp/deb/boot/config-$kv" 2>/dev/null &&
     bzimage_to_elf "$tmp/deb/boot/vmlinuz-$kv" "$tmp/kernel"; then :
  else
    cp "$tmp/deb/boot/vmlinuz-$kv" "$tmp/kernel"
  fi
  mkdir -p "$tmp/out"
  mv "$tmp/kernel" "$tmp/initramfs.cpio" "$tmp/out/"
  echo "$kv" > "$tmp/out/version"
  mv -T "$tmp/out" "$out" || [ -s "$out/initramfs.cpio" ] || die "cannot move the build to $out"
  rm -rf "$tmp"
}

# One run at a time downloads and builds; the others wait for it.
build_tmp=
trap '[ -z "$build_tmp" ] || rm -rf "$build_tmp"' EXIT
exec 9> "$cache/.lock"
flock 9
deb=$(kernel_deb)
key=$( { sha256sum < "$self"; echo "$lab_modules"; basename "$deb"; sha256sum < "$busybox"; } |
  sha256sum | cut -c1-16)
boot=$cache/boot/$key
if [ ! -s "$boot/initramfs.cpio" ]; then
  warn "building the lab kernel and initramfs from $(basename "$deb") (once) ..."
  build_boot "$deb" "$boot"
  # keep the builds of the last three script versions used; drop builds cut short
  ls -1dt "$cache/boot"/*/ | tail -n +4 | xargs -r rm -rf
  find "$cache/boot" -mindepth 1 -maxdepth 1 -name '.build.*' -mmin +60 -exec rm -rf {} + || true
fi
touch "$boot"
exec 9>&-

# ------------------------------------------------------------------ this run
run=$(mktemp -d "${TMPDIR:-/tmp}/rdmakit-lab.XXXXXX")
qemu_pid='' tail_pid=''
cleanup() {
  [ -z "$qemu_pid" ] || kill "$qemu_pid" 2>/dev/null || true
  [ -z "$tail_pid" ] || kill "$tail_pid" 2>/dev/null || true
  rm -rf "$run"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 131' QUIT
trap 'exit 129' HUP
# When this script is killed outright (go test does so when it gives up), the watcher still ends
# the VM and removes the run directory.
( trap '' INT TERM QUIT HUP
  tail --pid=$$ -f /dev/null 2>/dev/null
  [ ! -s "$run/qemu.pid" ] || kill "$(cat "$run/qemu.pid")" 2>/dev/null
  sleep 1; rm -rf "$run" ) </dev/null >/dev/null 2>&1 &

# go test -exec: share the test binary's directory (coverage data goes there) and -test.outputdir
if [[ $1 == */go-build*/*.test ]] && [ -f "$1" ]; then rw_dirs+=("$(dirname -- "$1")"); fi
for a in "$@"; do
  if [[ $a == -test.outputdir=/* ]] && [ -d "${a#*=}" ]; then rw_dirs+=("${a#*=}"); fi
done

if [ ${#rw_dirs[@]} -gt 0 ]; then  # parents before children: mounted in this order
  mapfile -t rw_dirs < <(printf '%s\n' "${rw_dirs[@]}" | LC_ALL=C sort -u)
fi
share=$run/share
mkdir "$share"
echo $lab_modules > "$share/modules"
: > "$share/rw-dirs"
for d in ${rw_dirs[@]+"${rw_dirs[@]}"}; do echo "$d" >> "$share/rw-dirs"; done
{
  path=${PATH:-/usr/bin:/bin}
  for d in /usr/local/sbin /usr/sbin /sbin; do [[ :$path: == *:$d:* ]] || path+=:$d; done
  printf 'export PATH=%q HOME=/root TERM=dumb LANG=C.UTF-8\n' "$path"
  while IFS= read -r name; do
    case $name in
      RDMAKIT_LAB_*) ;;
      RDMAKIT_*|GO*) printf 'export %s=%q\n' "$name" "${!name}" ;;
    esac
  done < <(compgen -e)
  echo 'export RDMAKIT_LAB=1 RDMAKIT_DEVICE=rxe0 RDMAKIT_NETDEV=veth0 RDMAKIT_IP=10.77.0.1 RDMAKIT_IP6=fd77::1'
  for e in ${set_env[@]+"${set_env[@]}"}; do printf 'export %s=%q\n' "${e%%=*}" "${e#*=}"; done
  printf 'cd -- %q 2>/dev/null || { echo "lab: the working directory is not visible in the guest, running in /" >&2; cd /; }\n' "$PWD"
  echo 'ulimit -l unlimited || echo "lab: cannot lift RLIMIT_MEMLOCK" >&2'
  printf '%q ' "$@"; echo
} > "$share/cmd.sh"

# CMD's output: guest serial port -> qemu pipe chardev -> FIFO here -> cat -> our stdout/stderr.
# Should our reader go away (`vm.sh ... | head`), the rest is drained, lest the guest block.
for s in out err; do mkfifo "$run/$s.in" "$run/$s.out"; done
{ cat < "$run/out.out" || exec cat < "$run/out.out" > /dev/null; } & out_pid=$!
{ cat < "$run/err.out" >&2 || exec cat < "$run/err.out" > /dev/null; } & err_pid=$!
: > "$run/console.log"
if [ "$verbose" = 1 ]; then tail -n +1 -f "$run/console.log" >&2 & tail_pid=$!; fi

virtfs() { echo "local,path=${1//,/,,},mount_tag=$2,security_model=none,multidevs=remap${3:-}"; }
fs=(-virtfs "$(virtfs / host ,readonly=on)" -virtfs "$(virtfs "$share" run)")
i=0
for d in ${rw_dirs[@]+"${rw_dirs[@]}"}; do fs+=(-virtfs "$(virtfs "$d" rw$i)"); i=$((i + 1)); done

timeout -k 5 "$timeout_s" qemu-system-x86_64 \
  -nodefaults -no-user-config -nic none -display none -no-reboot \
  -accel "$accel" -cpu max,la57=off -smp "$smp" -m "$mem" \
  -kernel "$boot/kernel" -initrd "$boot/initramfs.cpio" \
  -append "console=ttyS0 quiet panic=-1 ${RDMAKIT_LAB_APPEND:-}" \
  -serial "file:$run/console.log" -serial "pipe:$run/out" -serial "pipe:$run/err" \
  -pidfile "$run/qemu.pid" \
  "${fs[@]}" < /dev/null > "$run/qemu.log" 2>&1 &
qemu_pid=$!
qemu_rc=0
wait "$qemu_pid" || qemu_rc=$?
qemu_pid=

# Let both relays drain; opening a FIFO for a moment unblocks a cat still waiting in open()
# (qemu died before opening it, or the drain started after qemu's end).
while :; do
  for s in out err; do exec {fd}<> "$run/$s.out"; exec {fd}>&-; done
  kill -0 "$out_pid" 2>/dev/null || kill -0 "$err_pid" 2>/dev/null || break
  sleep 0.1
done
wait "$out_pid" "$err_pid" || true

if [ -s "$share/rc" ]; then
  exit "$(cat "$share/rc")"
fi
log=$cache/logs/console-$(date +%Y%m%d-%H%M%S)-$$.log
cat "$run/console.log" "$run/qemu.log" > "$log" 2>/dev/null || log=$run/console.log
ls -1t "$cache/logs"/console-*.log 2>/dev/null | tail -n +21 | xargs -r rm -f
if [ "$qemu_rc" = 124 ] || [ "$qemu_rc" = 137 ]; then
  warn "timed out after ${timeout_s}s (-t); the console log ends with:"
  tail -n 15 "$log" | sed 's/^/  | /' >&2
  warn "full console: $log"
  exit 124
fi
warn "the VM failed (qemu exit status $qemu_rc) before the command finished"
[ ! -s "$share/init-error" ] || warn "guest init: $(cat "$share/init-error")"
warn "the console log ends with:"
tail -n 30 "$log" | sed 's/^/  | /' >&2
warn "full console: $log"
exit 125
