"""Parses Prometheus text exposition with the Prometheus project's own
Python parser (prometheus_client) and prints its samples as JSON.

Usage: parse_metrics.py < metrics.txt. Prints one JSON object:
{"families": {name: type}, "samples": [{"name", "labels", "value"}]}. Exits 1
(with the parser's error) on text that is not valid exposition format. The
second-language check behind tests/ops.rs.
"""
import json
import sys

from prometheus_client.parser import text_string_to_metric_families


def main() -> int:
    text = sys.stdin.read()
    families, samples = {}, []
    try:
        for family in text_string_to_metric_families(text):
            families[family.name] = family.type
            for s in family.samples:
                samples.append({"name": s.name, "labels": s.labels, "value": s.value})
    except Exception as e:  # the parser raises ValueError and friends
        print(f"not Prometheus text: {e}", file=sys.stderr)
        return 1
    json.dump({"families": families, "samples": samples}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
