"""k8s/: every rendered object, and the pods the driver builds, pass their schemas.

Each object is validated against the Kubernetes OpenAPI schemas shipped by
`kubernetes-validate`, in strict mode (unknown fields fail), for the oldest and newest
Kubernetes versions we claim. The ServiceMonitor is a CRD with no schema there: it is
checked against a hand-vendored subset of the Prometheus Operator's CRD schema
(tests/fixtures/k8s/servicemonitor-v1.schema.json).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import jsonschema
import kubernetes_validate
import pytest

from tests.unit.k8s_objects import BASE, HA, K8S_VERSIONS, Obj, driver_pod, one, render, validate


def _cases() -> Iterator[Any]:
    for overlay in (BASE, HA):
        for obj in render(overlay):
            for version in K8S_VERSIONS:
                name = f"{overlay.name}:{obj['kind']}/{obj['metadata']['name']}@{version}"
                yield pytest.param(obj, version, id=name)


# --- schemas ----------------------------------------------------------------------


@pytest.mark.parametrize(("obj", "version"), list(_cases()))
def test_every_rendered_object_is_valid_against_its_schema(obj: Obj, version: str) -> None:
    validate(obj, version)


def test_the_validation_is_not_vacuous() -> None:
    deployment = one(render(BASE), "Deployment", "nimbus-gateway")
    typo = copy.deepcopy(deployment)
    typo["spec"]["template"]["spec"]["containers"][0]["securityContext"]["runAsNonRot"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(typo, K8S_VERSIONS[-1])
    wrong_type = copy.deepcopy(deployment)
    wrong_type["spec"]["replicas"] = "three"
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(wrong_type, K8S_VERSIONS[-1])
    monitor = one(render(BASE), "ServiceMonitor", "nimbus-gateway")
    monitor["spec"]["endpoints"][0]["interval"] = "30 seconds"
    with pytest.raises(jsonschema.ValidationError):
        validate(monitor, K8S_VERSIONS[-1])


def test_the_pods_the_driver_creates_are_valid_pods() -> None:
    for version in K8S_VERSIONS:
        validate(driver_pod(), version)
        validate(driver_pod(node=None, network=True, cpus=2.0), version)
