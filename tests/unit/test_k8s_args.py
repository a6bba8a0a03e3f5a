"""The gateway command in the manifests is one `nimbus` really accepts."""

from __future__ import annotations

from pathlib import Path

import yaml

from gateway.cli import parser

K8S = Path(__file__).resolve().parents[2] / "k8s"


def gateway_args() -> list[list[str]]:
    found = []
    for path in K8S.rglob("*.yaml"):
        for doc in yaml.safe_load_all(path.read_text()):
            if not isinstance(doc, dict) or doc.get("kind") not in ("Deployment", "StatefulSet"):
                continue
            pod = doc.get("spec", {}).get("template", {}).get("spec", {})  # patches have none
            for container in pod.get("containers", []):
                if container.get("args"):
                    found.append(container["args"])
    return found


def test_manifest_args_parse_with_the_real_cli() -> None:
    commands = gateway_args()
    assert len(commands) == 2
    for args in commands:
        parsed = parser().parse_args(args)
        assert parsed.command == "serve" and parsed.public_metrics is True
        assert parsed.host == "0.0.0.0" and parsed.port == 8080
