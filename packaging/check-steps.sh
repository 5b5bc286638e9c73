# Sourced by packaging/check-install.sh and packaging/check-nspawn.sh: `die` with the
# check's name, and `step`, which prints each step with the time since the start and the
# previous step's duration.
die() { echo "packaging/$(basename "$0"): FAIL: $*" >&2; exit 1; }
t0=${EPOCHREALTIME/./}
t_step=$t0
step() {
    local now=${EPOCHREALTIME/./}
    printf '== [%4d.%01d s, previous step %3d.%01d s] %s\n' $(((now - t0) / 1000000)) \
        $(((now - t0) / 100000 % 10)) $(((now - t_step) / 1000000)) \
        $(((now - t_step) / 100000 % 10)) "$*"
    t_step=$now
}
