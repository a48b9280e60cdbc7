#!/usr/bin/env bash
# Set up particledyn in ./.venv on a fresh Debian machine with Python 3.11, then
#   run   -- run the embedded default scenario (writes out/default.h5 and its figures)
#   test  -- run the test suite
#   setup -- only set up
# Idempotent: a second call reuses the venv and skips what is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
action="${1:-setup}"
case "$action" in run|test|setup) ;; *) echo "usage: $0 {run|test|setup}" >&2; exit 2 ;; esac

python_bin="${PYTHON:-$(command -v python3.11 || command -v python3)}"
need_apt=()
"$python_bin" -c "import venv, ensurepip" 2>/dev/null || need_apt+=(python3-venv)
command -v g++ >/dev/null || need_apt+=(g++)
command -v mpiexec >/dev/null || need_apt+=(openmpi-bin libopenmpi-dev)   # MPI-sharded runs
"$python_bin" -c "import sysconfig, os, sys; sys.exit(0 if os.path.exists(os.path.join(sysconfig.get_paths()['include'], 'Python.h')) else 1)" \
    || need_apt+=(python3-dev)
if [ ${#need_apt[@]} -gt 0 ]; then
    echo "bootstrap: installing Debian packages: ${need_apt[*]}"
    sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq && $sudo_cmd apt-get install -y -qq "${need_apt[@]}"
fi

if [ ! -x .venv/bin/python ]; then
    "$python_bin" -m venv .venv
fi
pip=".venv/bin/python -m pip"
$pip install -q --upgrade pip setuptools wheel
# dionysus ships only as source and needs Boost >= 1.78 headers (Debian 12 has 1.74):
# take them from PyPI's boost-headers wheel.
if ! .venv/bin/python -c "import dionysus" 2>/dev/null; then
    $pip install -q boost-headers
    boost_include="$(.venv/bin/python -c 'import boost_headers, os; print(os.path.join(os.path.dirname(boost_headers.__file__), "include"))')"
    echo "bootstrap: building dionysus against Boost headers in $boost_include (a few minutes)"
    CPATH="$boost_include${CPATH:+:$CPATH}" $pip install -q "dionysus>=2.2"
    $pip uninstall -q -y boost-headers   # build-only: ~180 MB of headers dionysus no longer needs
fi
extras="dev,topology,dist,docs"   # docs: the API reference (docs/api, tests/test_api_docs.py)
if [ "$action" = test ]; then
    # the equality tests against the authors' PyTorch loop; 2.13.0 is the CPU build (a bare
    # "torch" would pull a multi-GB CUDA build)
    .venv/bin/python -c "import torch" 2>/dev/null || $pip install -q "torch==2.13.0"
    extras="$extras,test"
fi
$pip install -q -e ".[$extras]"

case "$action" in
    run)  mkdir -p out && exec .venv/bin/particledyn run --default --out out/default.h5 --overwrite ;;
    test) exec .venv/bin/python -m pytest -q -p no:cacheprovider tests ;;
    setup) echo "bootstrap: ready; activate with: source .venv/bin/activate" ;;
esac
