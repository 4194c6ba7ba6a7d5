"""Validate a SAM template against SAM's own JSON schema (generated from
aws-sam-translator's schema models, as the published sam.schema.json is).

usage: python3 schema.py TEMPLATE

Prints one line per error (path: message) and exits 1 when there is any.
"""
import sys

import jsonschema
from samtranslator.internal.schema_source.schema import SamModel, get_schema
from samtranslator.yaml_helper import yaml_parse


def leaves(error):
    if not error.context:
        yield error
    for sub in error.context:
        yield from leaves(sub)


def deepest(error):
    """The most specific error under an anyOf/oneOf failure: the deepest
    leaf, a wrong value before an unexpected property."""
    return min(
        leaves(error),
        key=lambda e: (-len(e.absolute_path), e.validator == "additionalProperties", e.message),
    )


def main(argv):
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    with open(argv[1], encoding="utf-8") as f:
        template = yaml_parse(f.read())
    validator = jsonschema.Draft4Validator(get_schema(SamModel))
    errors = sorted(validator.iter_errors(template), key=lambda e: list(map(str, e.absolute_path)))
    for e in errors:
        d = deepest(e)
        path = "/".join(str(p) for p in d.absolute_path)
        print("%s: %s: %s" % (argv[1], path, d.message[:400]))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
