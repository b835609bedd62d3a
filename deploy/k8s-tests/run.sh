#!/usr/bin/env bash
# Validates the Kubernetes deployment artifacts offline: lints and renders helm/shopbridge (default and example
# values), validates every manifest with kubernetes-validate --strict (Kubernetes 1.30 and 1.32), checks the values
# schema, security contexts, probes, resources, config-key coverage against services/*/config/default.toml, the NATS
# topology copy and the Dockerfile rules. No cluster, no Docker, no helm binary; network only for PyPI on first run.
#
#   deploy/k8s-tests/run.sh                 # everything
#   deploy/k8s-tests/run.sh -k dockerfile   # extra arguments go to pytest
#
# Environment: PYTHON (default python3, >= 3.11), K8S_VERSIONS (default "1.30.0 1.32.0"),
#              SHOPBRIDGE_K8S_VENV (default <repo>/.local/venv-k8s).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
venv=${SHOPBRIDGE_K8S_VENV:-$root/.local/venv-k8s}
req="$here/requirements.txt"
python=${PYTHON:-python3}

if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "k8s-tests: $python is missing or older than 3.11 (tomllib is needed); set PYTHON=python3.11" >&2
  echo "0 passed, 1 failed"
  exit 1
fi

want=$(cat "$req" <("$python" -c 'import sys; print(sys.version)') | sha256sum | cut -d' ' -f1)
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$venv/.requirements.sha256" 2>/dev/null)" != "$want" ]; then
  echo "k8s-tests: creating $venv"
  rm -rf "$venv"
  mkdir -p "$(dirname "$venv")"
  if "$python" -m venv "$venv" 2>/dev/null; then
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req"
  else
    # Debian without python3-venv: no ensurepip. Make a bare venv and install into it with the system pip.
    rm -rf "$venv"
    "$python" -m venv --without-pip "$venv"
    "$python" -m pip --python "$venv/bin/python" install --quiet --disable-pip-version-check -r "$req"
  fi
  echo "$want" > "$venv/.requirements.sha256"
fi

cd "$root"
set +e
"$venv/bin/python" -m pytest "$here" -q -p no:cacheprovider -rs "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "k8s-tests: no test ran" >&2
  echo "0 passed, 1 failed"
  exit 1
fi
exit "$rc"
