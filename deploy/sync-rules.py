#!/usr/bin/env python3
"""Writes the copies of deploy/prometheus/alerts.yml that other tools load:
deploy/kubernetes/prometheusrule.yaml (Prometheus Operator) and
deploy/grafana/provisioning/alerting/restore-drill.yml (Grafana-managed rules).
Run it after changing alerts.yml; the tests check that the three agree. Needs PyYAML."""

import pathlib
import re

import yaml

DEPLOY = pathlib.Path(__file__).resolve().parent


class Literal(str):
    pass


def literal(dumper, text):
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style="|")


yaml.add_representer(Literal, literal)


def blocks(value):
    """Multi-line strings as literal blocks, so expressions stay readable."""
    if isinstance(value, dict):
        return {k: blocks(v) for k, v in value.items()}
    if isinstance(value, list):
        return [blocks(v) for v in value]
    if isinstance(value, str) and "\n" in value:
        return Literal(value)
    return value


def dump(path, comment, doc):
    text = yaml.dump(blocks(doc), sort_keys=False, width=100, allow_unicode=True)
    path.write_text(comment + text)


def grafana_template(text):
    # Prometheus' $value is Grafana's $values.A.Value.
    text = text.replace("{{ $value | humanizeDuration }}", "{{ humanizeDuration $values.A.Value }}")
    return text.replace("{{ $value }}", "{{ $values.A.Value }}")


def main():
    groups = yaml.safe_load((DEPLOY / "prometheus/alerts.yml").read_text())["groups"]
    dump(
        DEPLOY / "kubernetes/prometheusrule.yaml",
        "# The rules of deploy/prometheus/alerts.yml for the Prometheus Operator.\n"
        "# Written by deploy/sync-rules.py; edit alerts.yml and run it.\n",
        {
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "PrometheusRule",
            "metadata": {"name": "restore-drill"},
            "spec": {"groups": groups},
        },
    )
    rules = []
    for rule in groups[0]["rules"]:
        uid = re.sub(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "-", rule["alert"]).lower()
        rules.append(
            {
                "uid": uid[:40],
                "title": rule["alert"],
                "condition": "C",
                "data": [
                    {
                        "refId": "A",
                        "relativeTimeRange": {"from": 600, "to": 0},
                        "datasourceUid": "prometheus",
                        "model": {"refId": "A", "expr": rule["expr"], "instant": True},
                    },
                    {
                        "refId": "C",
                        "datasourceUid": "__expr__",
                        "model": {"refId": "C", "type": "math", "expression": "is_number($A)"},
                    },
                ],
                "for": rule.get("for", "0m"),
                "noDataState": "OK",
                "execErrState": "Error",
                "labels": rule["labels"],
                "annotations": {k: grafana_template(v) for k, v in rule["annotations"].items()},
            }
        )
    dump(
        DEPLOY / "grafana/provisioning/alerting/restore-drill.yml",
        "# Grafana-managed alert rules equal to deploy/prometheus/alerts.yml, for teams that alert\n"
        "# from Grafana: each rule's query A is the Prometheus rule's expression (every series it\n"
        "# returns is an alerting instance: condition C holds for each), with the same `for`,\n"
        "# labels and runbook. Written by deploy/sync-rules.py; edit alerts.yml and run it.\n",
        {
            "apiVersion": 1,
            "groups": [
                {
                    "orgId": 1,
                    "name": "restore-drill",
                    "folder": "restore-drill",
                    "interval": "1m",
                    "rules": rules,
                }
            ],
        },
    )


if __name__ == "__main__":
    main()
