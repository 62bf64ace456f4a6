#!/usr/bin/env bash
# Zero-loss throughput (RFC 2544 style) of relay, socat and direct, one stream of 1000-byte
# packets, in ONE run: the systems are probed in turn (interleaved), so each sees the same
# machine moments. See --help.
set -euo pipefail

usage() {
    cat <<'EOF'
zero_loss_chain.sh: highest offered rate with loss below a threshold, for
  relay  - `relay run` (default options unless --relay-args) on a labctl `chain` topology
  socat  - socat in the form docs/architecture.md describes on its own `chain` topology
  direct - loadgen send -> loadgen sink on a labctl `direct` topology (no relay)
one stream, searched by bisection over rates (one bounded probe per step and system).

Usage: relay/benches/zero_loss_chain.sh [options]      (root; run from the workspace root)
  --bins DIR          directory with labctl, loadgen, relay
                      (default: $CARGO_TARGET_DIR/release, else ./target/release)
  --systems LIST      comma list of relay,socat,direct,relay2 (default: relay,socat,direct)
  --low PPS           lowest rate probed, must pass (default 5000)
  --high PPS          highest rate probed (default 500000)
  --probe-secs S      seconds per probe (default 2)
  --loss-pct P        a probe passes when loss < P percent (default 0.1)
  --steps N           bisection steps per system (default 9)
  --retries N         probe a failing rate again up to N times; it fails only if all fail
                      (default 1: the lab machine is shared and noisy)
  --size BYTES        UDP payload size (default 1000)
  --relay-args ARGS   extra arguments for `relay run` (default: none = default options)
  --socat-rcvbuf B    socat rcvbuf= (default 8388608; the kernel caps it at net.core.rmem_max)
  --relay2-bin PATH   binary of the optional system `relay2` (default: the same relay), for a
                      before/after comparison in one interleaved run (add relay2 to --systems)
  --relay2-args ARGS  extra arguments for relay2's `relay run`
  -h, --help          this text

Output: one line per probe, then a table: system, zero-loss rate, the sender's achieved rate at
that probe, and the ratios relay/socat and relay/direct. A lossless probe where the sender fell
more than 5 % short of the asked rate counts at the achieved rate and stops the search upwards
(the generator, or a busy machine, is the limit there: typical for direct). Every load is bounded (--probe-secs,
sink --duration); topologies (labctl topo up/down) and processes (by PID) are removed on exit,
error, SIGINT and SIGTERM.
EOF
}

die() {
    echo "zero_loss_chain.sh: $*" >&2
    exit 2
}

BINS="${CARGO_TARGET_DIR:-./target}/release"
SYSTEMS="relay,socat,direct"
LOW=5000
HIGH=500000
PROBE_SECS=2
LOSS_PCT=0.1
STEPS=9
RETRIES=1
SIZE=1000
RELAY_ARGS=""
SOCAT_RCVBUF=8388608
RELAY2_BIN=""
RELAY2_ARGS=""

while [[ $# -gt 0 ]]; do
    case "$1" in
    -h | --help) usage; exit 0 ;;
    --bins) BINS="${2:?--bins needs a directory}"; shift 2 ;;
    --systems) SYSTEMS="${2:?--systems needs a list}"; shift 2 ;;
    --low) LOW="${2:?}"; shift 2 ;;
    --high) HIGH="${2:?}"; shift 2 ;;
    --probe-secs) PROBE_SECS="${2:?}"; shift 2 ;;
    --loss-pct) LOSS_PCT="${2:?}"; shift 2 ;;
    --steps) STEPS="${2:?}"; shift 2 ;;
    --retries) RETRIES="${2:?}"; shift 2 ;;
    --size) SIZE="${2:?}"; shift 2 ;;
    --relay-args) RELAY_ARGS="${2?}"; shift 2 ;;
    --socat-rcvbuf) SOCAT_RCVBUF="${2:?}"; shift 2 ;;
    --relay2-bin) RELAY2_BIN="${2:?}"; shift 2 ;;
    --relay2-args) RELAY2_ARGS="${2?}"; shift 2 ;;
    *) die "unknown option $1 (see --help)" ;;
    esac
done

is_uint() { [[ "$1" =~ ^[0-9]+$ ]]; }
is_uint "$LOW" && is_uint "$HIGH" && ((LOW >= 1 && HIGH > LOW && HIGH <= 2000000)) ||
    die "--low/--high must be integers with 1 <= low < high <= 2000000"
is_uint "$PROBE_SECS" && ((PROBE_SECS >= 1 && PROBE_SECS <= 30)) || die "--probe-secs must be 1..30"
is_uint "$STEPS" && ((STEPS >= 1 && STEPS <= 20)) || die "--steps must be 1..20"
is_uint "$RETRIES" && ((RETRIES <= 5)) || die "--retries must be 0..5"
is_uint "$SIZE" && ((SIZE >= 64 && SIZE <= 1472)) || die "--size must be 64..1472"
[[ "$LOSS_PCT" =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "--loss-pct must be a number"
is_uint "$SOCAT_RCVBUF" || die "--socat-rcvbuf must be bytes"
[[ $(id -u) -eq 0 ]] || die "needs root (network namespaces)"
for b in labctl loadgen relay; do
    [[ -x "$BINS/$b" ]] || die "$BINS/$b not found: build with cargo build --release -p $b, or pass --bins"
done
IFS=, read -r -a SYSTEM_LIST <<<"$SYSTEMS"
for s in "${SYSTEM_LIST[@]}"; do
    case "$s" in
    relay | direct) ;;
    relay2) [[ -x "${RELAY2_BIN:-$BINS/relay}" ]] || die "--relay2-bin $RELAY2_BIN is not executable" ;;
    socat) command -v socat >/dev/null || die "socat not installed" ;;
    *) die "unknown system $s in --systems (use relay, socat, direct, relay2)" ;;
    esac
done
command -v python3 >/dev/null || die "python3 is needed to read the JSON summaries"

TAG=$(printf '%04x' $((RANDOM % 65536)))
WORK=$(mktemp -d /tmp/zero-loss-XXXXXX)
declare -A TOPO PIDS
CLEANED=0

stop_pid() {
    local pid=$1
    kill -TERM "$pid" 2>/dev/null || return 0
    for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    ((CLEANED)) && return
    CLEANED=1
    for key in "${!PIDS[@]}"; do stop_pid "${PIDS[$key]}"; done
    for key in "${!TOPO[@]}"; do "$BINS/labctl" topo down "${TOPO[$key]}" >/dev/null 2>&1 || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT
trap 'cleanup; exit 143' TERM

# One topology per system: relay and socat must not listen on the same namespace.
index=0
for s in "${SYSTEM_LIST[@]}"; do
    template=chain
    [[ $s == direct ]] && template=direct
    index=$((index + 1))
    id="z${TAG}${index}"
    TOPO[$s]=$id
    "$BINS/labctl" topo up "$template" --name "$id" >"$WORK/topo-$s.txt" 2>&1 ||
        { cat "$WORK/topo-$s.txt" >&2; die "labctl topo up $template failed"; }
done

# netns, interface, address of a role in system $1's topology.
ns() { echo "mlab-${TOPO[$1]}-$2"; }
ifname() { echo "ml${TOPO[$1]}-$2"; }

start_system() {
    local s=$1 id=${TOPO[$1]}
    case "$s" in
    relay | relay2)
        local bin="$BINS/relay" args=$RELAY_ARGS
        if [[ $s == relay2 ]]; then
            bin=${RELAY2_BIN:-$BINS/relay}
            args=$RELAY2_ARGS
        fi
        # shellcheck disable=SC2086
        ip netns exec "$(ns "$s" relay)" "$bin" run --control "$WORK/$s.sock" \
            --rule "$(ifname "$s" l1b):239.1.0.1:5000 -> $(ifname "$s" l2a):239.2.0.1:5000" \
            $args >"$WORK/$s.log" 2>&1 &
        PIDS[$s]=$!
        for _ in $(seq 100); do
            "$BINS/relay" ctl --control "$WORK/$s.sock" --timeout 1 list >/dev/null 2>&1 && return 0
            kill -0 "${PIDS[$s]}" 2>/dev/null || break
            sleep 0.1
        done
        cat "$WORK/$s.log" >&2
        die "$s did not come up"
        ;;
    socat)
        ip netns exec "$(ns socat relay)" socat -u \
            "UDP4-RECV:5000,bind=239.1.0.1,reuseaddr,ip-add-membership=239.1.0.1:198.18.1.2,rcvbuf=$SOCAT_RCVBUF" \
            "UDP4-SENDTO:239.2.0.1:5000,ip-multicast-if=198.18.2.1,ip-multicast-ttl=8,ip-multicast-loop=0" \
            >"$WORK/socat.log" 2>&1 &
        PIDS[socat]=$!
        ;;
    direct) ;;
    esac
    : "$id"
}

# probe SYSTEM RATE [SECS] -> sets P_SENT P_RECEIVED P_ACHIEVED
probe() {
    local s=$1 rate=$2 secs=${3:-$PROBE_SECS} sink_if group ready="$WORK/ready-$1"
    if [[ $s == direct ]]; then
        sink_if=$(ifname "$s" l1b)
        group=239.1.0.1
    else
        sink_if=$(ifname "$s" l2b)
        group=239.2.0.1
    fi
    rm -f "$ready" "$WORK/sink-$s.json" "$WORK/send-$s.json"
    ip netns exec "$(ns "$s" sink)" timeout $((secs + 15)) "$BINS/loadgen" sink --interface "$sink_if" \
        --streams 1 --group-base "$group" --idle 1 --duration $((secs + 8)) \
        --ready-file "$ready" --json "$WORK/sink-$s.json" --quiet &
    PIDS[sink]=$!
    for _ in $(seq 100); do
        [[ -e $ready ]] && break
        sleep 0.05
    done
    [[ -e $ready ]] || die "sink for $s did not get ready"
    ip netns exec "$(ns "$s" gen)" timeout $((secs + 10)) "$BINS/loadgen" send \
        --interface "$(ifname "$s" l1a)" --streams 1 --size "$SIZE" --total-rate "$rate" \
        --duration "$secs" --quiet --json "$WORK/send-$s.json" ||
        die "loadgen send failed for $s at $rate pps"
    wait "${PIDS[sink]}" || true
    unset 'PIDS[sink]'
    read -r P_SENT P_RECEIVED P_ACHIEVED < <(python3 - "$WORK/send-$s.json" "$WORK/sink-$s.json" <<'PY'
import json, sys
sent = json.load(open(sys.argv[1]))
try:
    received = json.load(open(sys.argv[2]))["totals"]["received"]
except (OSError, ValueError, KeyError):
    received = 0
print(sent["sent_packets"], received, round(sent["achieved_pps"]))
PY
    )
}

loss_ok() { # sent received -> 0 when loss < LOSS_PCT
    python3 -c "import sys; s,r=int(sys.argv[1]),int(sys.argv[2]); sys.exit(0 if s>0 and (s-min(r,s))*100.0/s < float(sys.argv[3]) else 1)" "$1" "$2" "$LOSS_PCT"
}

declare -A LO HI BEST ACH
for s in "${SYSTEM_LIST[@]}"; do
    start_system "$s"
    # Warm-up: the path must forward at all (joins done, snooping/IGMP settled).
    probe "$s" 1000 1
    ((P_RECEIVED > 0)) || die "$s forwarded nothing in the warm-up probe (sent $P_SENT)"
    LO[$s]=$LOW # step 0 probes LOW; if that fails, LO becomes 0 and HI becomes LOW
    HI[$s]=$HIGH
    BEST[$s]=0
    ACH[$s]=0
done

printf '%-7s %4s %9s %9s %9s %9s %8s %s\n' system step "offered" "achieved" "sent" "received" "loss%" verdict
echo "(offered/achieved in pps; sent/received in packets)"
for step in $(seq 0 "$STEPS"); do
    for s in "${SYSTEM_LIST[@]}"; do
        if ((step == 0)); then
            rate=$LOW
        else
            rate=$(((LO[$s] + HI[$s]) / 2))
        fi
        probe "$s" "$rate"
        sent=$P_SENT received=$P_RECEIVED achieved=$P_ACHIEVED
        if ! loss_ok "$sent" "$received" && ((RETRIES > 0)); then
            # A noisy machine: a rate fails only if every retry fails too.
            for _ in $(seq "$RETRIES"); do
                printf '%-7s %4d %9d %9d %9d %9d %8s %s\n' "$s" "$step" "$rate" "$achieved" \
                    "$sent" "$received" "-" "fail, retrying"
                probe "$s" "$rate"
                sent=$P_SENT received=$P_RECEIVED achieved=$P_ACHIEVED
                loss_ok "$sent" "$received" && break
            done
        fi
        loss=$(python3 -c "import sys; s,r=int(sys.argv[1]),int(sys.argv[2]); print(f'{(s-min(r,s))*100.0/max(s,1):.3f}')" "$sent" "$received")
        if loss_ok "$sent" "$received" && ((achieved * 100 < rate * 95)); then
            # Lossless, but the sender fell more than 5 % short of the asked rate: only the
            # achieved rate is proven (the generator, or a busy machine, was the limit).
            verdict="pass (sender short)"
            if ((achieved > LO[$s])); then LO[$s]=$achieved; fi
            if ((achieved > BEST[$s])); then
                BEST[$s]=$achieved
                ACH[$s]=$achieved
            fi
        elif loss_ok "$sent" "$received"; then
            verdict=pass
            LO[$s]=$rate
            if ((rate > BEST[$s])); then
                BEST[$s]=$rate
                ACH[$s]=$achieved
            fi
        else
            verdict=fail
            HI[$s]=$rate
            if ((step == 0)); then LO[$s]=0; fi
        fi
        printf '%-7s %4d %9d %9d %9d %9d %8s %s\n' "$s" "$step" "$rate" "$achieved" "$sent" "$received" "$loss" "$verdict"
    done
done

echo
echo "zero-loss (loss < ${LOSS_PCT}%) throughput, 1 stream, ${SIZE}-byte payloads, ${PROBE_SECS} s probes:"
printf '%-7s %12s %14s\n' system "rate (pps)" "achieved (pps)"
for s in "${SYSTEM_LIST[@]}"; do
    printf '%-7s %12d %14d\n' "$s" "${BEST[$s]}" "${ACH[$s]}"
done
ratio() {
    python3 -c "import sys; a,b=int(sys.argv[1]),int(sys.argv[2]); print(f'{a/b:.2f}' if b else 'n/a')" "$1" "$2"
}
[[ -n ${BEST[relay]:-} && -n ${BEST[socat]:-} ]] && echo "relay/socat  $(ratio "${BEST[relay]}" "${BEST[socat]}")"
[[ -n ${BEST[relay]:-} && -n ${BEST[direct]:-} ]] && echo "relay/direct $(ratio "${BEST[relay]}" "${BEST[direct]}")"
[[ -n ${BEST[relay]:-} && -n ${BEST[relay2]:-} ]] && echo "relay/relay2 $(ratio "${BEST[relay]}" "${BEST[relay2]}")"
echo "(a rate equal to --high means the search hit its ceiling; compare 'achieved' with the rate to spot a sender that fell short)"
exit 0
