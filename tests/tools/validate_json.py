"""Validates JSON documents against a JSON schema (draft 7).

Usage: validate_json.py SCHEMA FILE...  Exits 1 naming each invalid file and
the first error in it. A second-language check for the answers our tests
collect: EPCIS query answers against GS1's EPCIS 2.0 schema (tests/epcis.rs),
resolver linksets against GS1's linkset schema (tests/resolver.rs).
"""
import json
import sys

import jsonschema


def main() -> int:
    schema = json.load(open(sys.argv[1]))
    validator = jsonschema.Draft7Validator(schema)
    bad = 0
    for path in sys.argv[2:]:
        doc = json.load(open(path))
        errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.path))
        if errors:
            bad += 1
            e = errors[0]
            print(f"{path}: {'/'.join(map(str, e.path))}: {e.message[:300]}")
    print(f"{len(sys.argv) - 2 - bad} valid, {bad} invalid")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
