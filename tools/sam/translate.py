"""Translate a SAM template to CloudFormation with AWS's own SAM translator
(aws-sam-translator, the code CloudFormation runs for
Transform: AWS::Serverless-2016-10-31), offline.

usage: python3 translate.py TEMPLATE [Name=Value ...] > translated.json

Local CodeUri folders become s3://bucket/<folder>, as `sam package` would
upload them. Translation errors go to stderr, one per line, exit 1.
"""
import json
import os
import sys

from samtranslator.public.exceptions import InvalidDocumentException
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse


class NoManagedPolicies:
    """The template names no managed policy by name; SAM asks IAM otherwise."""

    def load(self):
        return {}


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    with open(argv[1], encoding="utf-8") as f:
        template = yaml_parse(f.read())
    for res in (template.get("Resources") or {}).values():
        if isinstance(res, dict) and res.get("Type") == "AWS::Serverless::Function":
            props = res.setdefault("Properties", {})
            uri = props.get("CodeUri")
            if isinstance(uri, str) and not uri.startswith("s3://"):
                props["CodeUri"] = "s3://bucket/" + uri.strip("/")
    params = {}
    for arg in argv[2:]:
        name, sep, value = arg.partition("=")
        if not sep:
            print("parameter %r: want Name=Value" % arg, file=sys.stderr)
            return 2
        params[name] = value
    # The translator fills AWS::Region and friends from a session; offline
    # it needs the region in the environment.
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    try:
        out = transform(template, params, NoManagedPolicies())
    except InvalidDocumentException as e:
        for cause in e.causes:
            print("ERROR " + cause.message, file=sys.stderr)
        return 1
    json.dump(out, sys.stdout, indent=1, sort_keys=True, default=str)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
