"""Validates rendered Kubernetes manifests offline, for k8s/tests/deploy.rs.

    python validate.py VERSION FILE...

Every object of every FILE (multi-document YAML) is checked against the
Kubernetes VERSION schemas of kubernetes-validate in strict mode (unknown
fields are errors). Custom resources are checked against the
openAPIV3Schema of their CustomResourceDefinition in the same FILE, made
strict the same way (the API server would silently prune a misspelt
field; here it is an error). Prints
one JSON object: {"checked": N, "custom": N, "no_schema": [...],
"errors": [...]}; the caller decides what may lack a schema.
"""

import json
import sys

import jsonschema
import kubernetes_validate
import yaml


def strict(schema):
    """`schema` with additionalProperties false wherever it lists properties."""
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strict(v) for k, v in schema.items()}
    if "properties" in out and not out.get("x-kubernetes-preserve-unknown-fields"):
        out.setdefault("additionalProperties", False)
    return out


def crd_schemas(objects):
    schemas = {}
    for obj in objects:
        if obj.get("kind") != "CustomResourceDefinition":
            continue
        spec = obj["spec"]
        for version in spec["versions"]:
            key = (spec["group"] + "/" + version["name"], spec["names"]["kind"])
            schema = dict(version["schema"]["openAPIV3Schema"])
            props = dict(schema.get("properties", {}))
            for field in ("apiVersion", "kind", "metadata"):
                props.setdefault(field, {})
            schema["properties"] = props
            schemas[key] = strict(schema)
    return schemas


def name_of(path, obj):
    meta = obj.get("metadata") or {}
    return "%s: %s %s/%s" % (path, obj.get("kind"), meta.get("namespace", ""), meta.get("name"))


def main():
    version, paths = sys.argv[1], sys.argv[2:]
    report = {"checked": 0, "custom": 0, "no_schema": [], "errors": []}
    for path in paths:
        with open(path) as f:
            objects = [o for o in yaml.safe_load_all(f) if o is not None]
        custom = crd_schemas(objects)
        for obj in objects:
            where = name_of(path, obj)
            key = (obj.get("apiVersion"), obj.get("kind"))
            try:
                if key in custom:
                    jsonschema.validate(obj, custom[key])
                    report["custom"] += 1
                else:
                    kubernetes_validate.validate(obj, version, strict=True)
                    report["checked"] += 1
            except kubernetes_validate.SchemaNotFoundError:
                report["no_schema"].append("%s/%s" % key)
            except jsonschema.ValidationError as e:
                field = "/".join(str(p) for p in e.absolute_path)
                report["errors"].append("%s: at %s: %s" % (where, field, e.message))
    print(json.dumps(report))


if __name__ == "__main__":
    main()
