"""GET /openapi.json: every route of the app is in it, it is valid OpenAPI 3.1, and each request
body schema is the very object the handler validates with."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

import jsonschema
import jsonschema_rs
import schemathesis
from schemathesis.specs.openapi.definitions import OPENAPI_31

from mininova.api import openapi, validation
from mininova.controller import Controller
from tests.conftest import ApiClient

C = "/compute/v2.1"


@contextlib.contextmanager
def validated_schemas() -> Iterator[list[dict[str, Any]]]:
    """Every schema object a jsonschema validator checks an instance against, while inside."""
    seen: list[dict[str, Any]] = []
    classes = (jsonschema.Draft4Validator, jsonschema.Draft7Validator, validation.Validator)
    originals = {cls: cls.iter_errors for cls in classes}

    def recording(original: Any) -> Any:
        def iter_errors(self: Any, instance: Any, *args: Any) -> Any:
            seen.append(self.schema)
            return original(self, instance, *args)

        return iter_errors

    try:
        for cls in classes:
            cls.iter_errors = recording(originals[cls])  # type: ignore[method-assign]
        yield seen
    finally:
        for cls, original in originals.items():
            cls.iter_errors = original  # type: ignore[method-assign]


async def test_document_is_public_valid_openapi_31_and_lists_every_route(
    api: ApiClient, controller: Controller
) -> None:
    status, document, _ = await api.get("/openapi.json", token=False)
    assert status == 200, document
    assert document["openapi"] == "3.1.0"
    meta = jsonschema_rs.Draft202012Validator(OPENAPI_31)  # the Rust one: seconds faster
    assert [e.message for e in meta.iter_errors(document)] == []
    operations = list(schemathesis.openapi.from_dict(document).get_all_operations())
    assert all(result.ok() for result in operations)  # schemathesis reads every operation
    bodies = {
        json.dumps(media["schema"], sort_keys=True)
        for _, _, op in _operations(document)
        for media in op.get("requestBody", {}).get("content", {}).values()
    }
    for body in bodies:  # each a JSON Schema 2020-12 (OpenAPI 3.1's dialect)
        jsonschema.Draft202012Validator.check_schema(json.loads(body))

    listed = {(m.upper(), p) for m, p, _ in _operations(document)}
    routes = {
        (r.method, openapi._PARAM.sub(lambda m: "{" + m.group(1) + "}", r.resource.canonical))
        for r in controller.app.router.routes()
        if r.resource is not None
    }
    assert routes - listed == set()  # the agent, console and dashboard routes included
    assert ("GET", "/openapi.json") in listed
    assert document["paths"][C + "/servers/{server_id}"]["get"]["parameters"][0]["name"] == (
        "server_id"
    )
    # Token-free exactly where the middleware lets a request through without one.
    get_token = document["paths"]["/identity/v3/auth/tokens"]
    assert get_token["post"]["security"] == [] and "security" not in get_token["get"]
    assert document["paths"]["/openapi.json"]["get"]["security"] == []
    assert document["components"]["securitySchemes"]["token"]["name"] == "X-Auth-Token"
    assert document["paths"]["/agent"]["get"]["x-internal"] is True
    errors_of = document["paths"]["/networking/v2.0/networks"]["post"]["responses"]["404"]
    assert errors_of["content"]["application/json"]["schema"]["$ref"].endswith("/NeutronError")


_NEUTRON_RESOURCES = {
    "networks": "network",
    "subnets": "subnet",
    "floatingips": "floatingip",
    "security-groups": "security_group",
    "security-group-rules": "security_group_rule",
}


def _operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, op in item.items():
            yield method, path, op


async def test_request_bodies_are_the_schemas_the_handlers_validate_with(
    api: ApiClient, controller: Controller
) -> None:
    """Each documented schema object is the one its handler checks a request body against."""
    document = openapi.build_document(controller.app.router)
    ids = await _resources(api)
    assert openapi.REQUEST_SCHEMAS, "no request schemas documented"
    for (method, template), schema in openapi.REQUEST_SCHEMAS.items():
        op = document["paths"][template][method.lower()]
        (media,) = op["requestBody"]["content"].values()
        assert media["schema"] is schema, (method, template)
        path = template.format(**ids)
        headers = {"Content-Type": "application/openstack-images-v2.1-json-patch"}
        # Valid JSON that no schema here accepts (Neutron first wants its resource object).
        resource = _NEUTRON_RESOURCES.get(template.rsplit("/", 2)[1 if "{" in template else 2])
        data = (
            b"12345" if resource is None else b'{"%s": {"description": 12345}}' % resource.encode()
        )
        with validated_schemas() as seen:
            status, body, _ = await api.request(
                method,
                path,
                data=data,
                headers=headers if "PATCH" == method and template.startswith("/image") else None,
                version="2.100",
            )
        assert status == 400, (method, path, status, body)
        assert any(s is schema for s in seen), (method, template, body)


async def test_server_actions_document_each_actions_own_schema(
    api: ApiClient, controller: Controller
) -> None:
    """POST /servers/{id}/action: a oneOf with every action, each branch the handler's schema."""
    document = openapi.build_document(controller.app.router)
    op = document["paths"][C + "/servers/{server_id}/action"]["post"]
    branches = op["requestBody"]["content"]["application/json"]["schema"]["oneOf"]
    assert len(branches) == len(openapi.server_actions.ACTIONS)
    ids = await _resources(api)
    for name, schema in [*openapi.ACTION_SCHEMAS.items(), ("rebuild", openapi.REBUILD_SCHEMA)]:
        assert any(b is schema or b["properties"].get(name) is schema for b in branches), name
        with validated_schemas() as seen:
            status, body, _ = await api.post(
                f"{C}/servers/{ids['server_id']}/action", json={name: 12345}, version="2.100"
            )
        assert status == 400, (name, status, body)
        assert any(s is schema for s in seen), (name, body)


async def _resources(api: ApiClient) -> dict[str, str]:
    """Ids for the path parameters: objects a handler looks up before it reads the body."""
    image = await api.upload_image()
    server = {"name": "vm", "imageRef": image, "flavorRef": "1", "networks": "none"}
    status, body, _ = await api.post(C + "/servers", json={"server": server}, version="2.100")
    assert status == 202, body
    server_id = body["server"]["id"]
    _, groups, _ = await api.get("/networking/v2.0/security-groups")
    n = "/networking/v2.0"
    status, net, _ = await api.post(
        n + "/networks", json={"network": {"name": "public", "router:external": True}}
    )
    assert status == 201, net
    subnet = {"network_id": net["network"]["id"], "cidr": "172.24.4.0/24", "ip_version": 4}
    status, body, _ = await api.post(n + "/subnets", json={"subnet": subnet})
    assert status == 201, body
    fip = {"floatingip": {"floating_network_id": net["network"]["id"]}}
    status, fip, _ = await api.post(n + "/floatingips", json=fip)
    assert status == 201, fip
    return {
        "project_id": api.project_id,
        "user_id": api.user_id,
        "server_id": server_id,
        "key": "k1",
        "flavor_id": "1",
        "image_id": image,
        "class_name": "default",
        "floatingip_id": fip["floatingip"]["id"],
        "group_id": groups["security_groups"][0]["id"],
    }


async def test_document_needs_no_token_but_the_api_still_does(api: ApiClient) -> None:
    status, _, _ = await api.get("/openapi.json", token=False)
    assert status == 200
    status, body, _ = await api.get(C + "/servers", token=False)
    assert status == 401, body
