"""Validates an OpenAPI document against the OpenAPI specification's schema.

Usage: validate_openapi.py FILE  Exits 1 with the first error. A
second-language check of the document the node serves (tests/http.rs): what a
client generator would be given.
"""
import json
import sys

from openapi_spec_validator import validate
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError


def main() -> int:
    doc = json.load(open(sys.argv[1]))
    try:
        validate(doc)
    except OpenAPIValidationError as e:
        print(f"{sys.argv[1]}: {e}")
        return 1
    print(f"{sys.argv[1]}: a valid OpenAPI {doc.get('openapi')} document")
    return 0


if __name__ == "__main__":
    sys.exit(main())
