"""Validate a SARIF log against the official SARIF 2.1.0 JSON schema with `jsonschema`,
the reference JSON Schema implementation for Python. Usage: validate_sarif.py SCHEMA LOG.
Exit 0 when valid; otherwise print each error (path and message) and exit 1."""
import json
import sys

import jsonschema

schema = json.load(open(sys.argv[1], encoding="utf-8"))
log = json.load(open(sys.argv[2], encoding="utf-8"))
validator = jsonschema.validators.validator_for(schema)(schema)
errors = sorted(validator.iter_errors(log), key=lambda e: list(map(str, e.path)))
for e in errors[:50]:
    print("/" + "/".join(map(str, e.path)), e.message[:300])
sys.exit(1 if errors else 0)
