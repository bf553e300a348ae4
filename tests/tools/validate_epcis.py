"""Validates EPCIS 2.0 JSON documents against GS1's JSON schema.

Usage: validate_epcis.py SCHEMA FILE...  Exits 1 naming each invalid file and
the first error in it. A second-language check for the query answers our
tests collect (tests/epcis.rs).
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
