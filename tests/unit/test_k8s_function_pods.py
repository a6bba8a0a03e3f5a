"""k8s/: the pods the driver builds pass the "restricted" Pod Security rules of the
namespace they run in, and the network policies select them by their egress label.
"""

from __future__ import annotations

from invoker.drivers.kubernetes_pods import EGRESS_LABEL, KubernetesDriverConfig
from tests.unit.k8s_objects import (
    BASE,
    FUNCTIONS_NS,
    PLATFORM_NS,
    driver_pod,
    gateway_workload,
    matches,
    one,
    render,
    restricted_violations,
)

# --- function pods and their network ----------------------------------------------------


def test_the_driver_pods_pass_the_restricted_profile_of_their_namespace() -> None:
    for pod in (driver_pod(), driver_pod(network=True, node=None)):
        assert restricted_violations(pod["spec"]) == []
        assert pod["spec"]["automountServiceAccountToken"] is False
        assert pod["metadata"]["namespace"] == FUNCTIONS_NS


def test_the_restricted_check_catches_what_it_should() -> None:
    pod = driver_pod()["spec"]
    pod["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = True
    pod["containers"][0]["securityContext"]["capabilities"] = {"add": ["SYS_ADMIN"]}
    pod["volumes"].append({"name": "host", "hostPath": {"path": "/"}})
    problems = restricted_violations(pod)
    assert len(problems) == 4, problems


def test_network_policies_follow_the_driver_egress_label() -> None:
    objs = render(BASE)
    deny = one(objs, "NetworkPolicy", "function-egress-deny")["spec"]
    assert deny["podSelector"]["matchLabels"] == {EGRESS_LABEL: "deny"}
    assert deny["policyTypes"] == ["Egress"] and deny["egress"] == []
    allow = one(objs, "NetworkPolicy", "function-egress-internet-only")["spec"]
    assert allow["podSelector"]["matchLabels"] == {EGRESS_LABEL: "allow"}
    blocked = allow["egress"][-1]["to"][0]["ipBlock"]["except"]
    assert "169.254.0.0/16" in blocked  # the cloud metadata endpoint
    # Each driver pod is selected by exactly one egress policy.
    for network, value in ((False, "deny"), (True, "allow")):
        labels = driver_pod(network=network)["metadata"]["labels"]
        assert labels[EGRESS_LABEL] == value
    # Only the gateway reaches function pods, and only on the runtime port.
    ingress = one(objs, "NetworkPolicy", "function-ingress-from-gateway")["spec"]
    assert ingress["podSelector"] == {}
    (rule,) = ingress["ingress"]
    (peer,) = rule["from"]
    gateway_labels = gateway_workload(objs)["spec"]["template"]["metadata"]["labels"]
    assert matches(peer["podSelector"]["matchLabels"], gateway_labels)
    assert peer["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": PLATFORM_NS}
    assert rule["ports"] == [{"protocol": "TCP", "port": KubernetesDriverConfig().port}]
