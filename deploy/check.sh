#!/usr/bin/env bash
# Checks the deploy files without a cluster or a container engine:
#   - every overlay under deploy/k8s/overlays renders (kubectl kustomize) and each of its
#     resources validates strictly against the Kubernetes API schemas (kubernetes-validate);
#   - deploy/compose.yaml is YAML with services;
#   - the Prometheus alert rules, when deploy/prometheus/alerts.yaml exists, pass promtool.
# Tools: kubectl; kubernetes-validate from ${KUBERNETES_VALIDATE:-.venv/bin/kubernetes-validate}
# (pinned in .ci/requirements.txt), with the Python beside it; promtool (Debian's prometheus).
# KUBERNETES_VERSION picks the API version validated against.
set -euo pipefail
cd "$(dirname "$0")/.."

KUBERNETES_VALIDATE=${KUBERNETES_VALIDATE:-.venv/bin/kubernetes-validate}
PYTHON=$(dirname "$KUBERNETES_VALIDATE")/python
KUBERNETES_VERSION=${KUBERNETES_VERSION:-1.31.0}

fail() { echo "deploy/check.sh: $*" >&2; exit 1; }

command -v kubectl >/dev/null || fail "kubectl is required (it renders the kustomize overlays)"
[ -x "$KUBERNETES_VALIDATE" ] ||
    fail "$KUBERNETES_VALIDATE is missing: python3 -m venv .venv && .venv/bin/pip install -r .ci/requirements.txt"

rendered=$(mktemp)
report=$(mktemp)
trap 'rm -f "$rendered" "$report"' EXIT

for overlay in deploy/k8s/overlays/*/; do
    overlay=${overlay%/}
    kubectl kustomize "$overlay" >"$rendered" || fail "$overlay does not render"
    # A resource of an unknown kind is only a warning to the validator (exit 0): count it too.
    if ! "$KUBERNETES_VALIDATE" --strict -k "$KUBERNETES_VERSION" - <"$rendered" >"$report" ||
        grep -qE '^(ERROR|WARN|FATAL)' "$report"; then
        grep -vE '^INFO' "$report" >&2 || true
        fail "$overlay does not validate against Kubernetes $KUBERNETES_VERSION"
    fi
    echo "ok: $overlay renders; $(grep -c '^INFO' "$report") resources valid (strict, Kubernetes $KUBERNETES_VERSION)"
done

"$PYTHON" - deploy/compose.yaml <<'PY' || fail "deploy/compose.yaml is not a valid compose file"
import sys
import yaml

with open(sys.argv[1]) as f:
    compose = yaml.safe_load(f)
services = compose.get("services") if isinstance(compose, dict) else None
if not isinstance(services, dict) or not services:
    sys.exit(f"{sys.argv[1]}: no services")
print(f"ok: {sys.argv[1]} parses; {len(services)} services")
PY

if [ -f deploy/prometheus/alerts.yaml ]; then
    command -v promtool >/dev/null ||
        fail "promtool is required for deploy/prometheus/alerts.yaml (apt-get install prometheus)"
    promtool check rules deploy/prometheus/alerts.yaml
    if [ -f deploy/prometheus/alerts.test.yaml ]; then
        promtool test rules deploy/prometheus/alerts.test.yaml
    fi
    echo "ok: deploy/prometheus alert rules"
fi

# Every metric the alerts and the dashboard use is one the code records (a renamed metric would
# otherwise leave an alert that can never fire).
for name in $(grep -ohE 'tanda_[a-z_]+' deploy/prometheus/alerts.yaml deploy/grafana/tanda.json | sort -u); do
    base=${name%_bucket}
    grep -rqF "\"$base\"" crates src || fail "$name is used in deploy/ but no code records $base"
done
echo "ok: every metric in deploy/prometheus and deploy/grafana is recorded by the code"
