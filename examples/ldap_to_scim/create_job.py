"""Create an LDAP -> SCIM job on a running ``syncjob serve``, through its HTTP API only.

    export SYNCJOB_TOKEN=... LDAP_PASSWORD=... SCIM_TOKEN=...
    python examples/ldap_to_scim/create_job.py --url http://127.0.0.1:8080 \\
        --ldap-url ldap://ldap.example.org:389 --ldap-bind-dn cn=sync,dc=example,dc=org \\
        --ldap-base-dn dc=example,dc=org --scim-url https://app.example.com/scim/v2

It does what an administrator does in Entra: a servicePrincipal (application), a job from the
``ldapToScim`` template on a schedule, the job's schema replaced by ``schema.json`` (the
template's, plus one mapping), the application's secrets, then start. It prints the job id.

Every flag also reads an environment variable (shown in ``--help``); pass passwords and
tokens that way, since a command line is visible to every user of the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import requests

HERE = Path(__file__).resolve().parent

#: flag -> (environment variable, default, help)
OPTIONS: dict[str, tuple[str, str | None, str]] = {
    "url": ("SYNCJOB_URL", "http://127.0.0.1:8080", "the daemon's address"),
    "token": ("SYNCJOB_TOKEN", None, "the daemon's bearer token"),
    "ldap-url": ("LDAP_URL", None, "ldap://host:port or ldaps://host:port"),
    "ldap-bind-dn": ("LDAP_BIND_DN", None, "the DN the job binds as"),
    "ldap-password": ("LDAP_PASSWORD", None, "its password"),
    "ldap-base-dn": ("LDAP_BASE_DN", None, "base of ou=people and ou=groups"),
    "ldap-delta-mode": ("LDAP_DELTA_MODE", "accesslog", "accesslog or timestamp"),
    "scim-url": ("SCIM_URL", None, "the SCIM app's base address (…/scim/v2)"),
    "scim-token": ("SCIM_TOKEN", None, "the SCIM app's bearer token"),
    "interval": ("SYNC_INTERVAL", "PT5M", "the schedule, ISO-8601 (Entra's default: PT40M)"),
    "schema": (
        "SYNC_SCHEMA",
        str(HERE / "schema.json"),
        "the schema to PUT ('' keeps the template's)",
    ),
}


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    for flag, (env, default, text) in OPTIONS.items():
        value = os.environ.get(env, default)
        parser.add_argument(f"--{flag}", default=value, required=value is None,
                            help=f"{text} (env {env})")  # fmt: skip
    return parser.parse_args(argv)


class Api:
    """The daemon's Graph API (v1.0); a refusal stops the script with Graph's error body."""

    def __init__(self, url: str, token: str) -> None:
        self.url = url.rstrip("/") + "/v1.0"
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"

    def __call__(self, method: str, path: str, body: Any = None) -> Any:
        response = self.session.request(method, self.url + path, json=body, timeout=60)
        if response.status_code >= 400:
            sys.exit(f"{method} {path}: {response.status_code} {response.text}")
        return response.json() if response.content else None


def main(argv: list[str] | None = None) -> str:
    args = parse(argv)
    api = Api(args.url, args.token)
    app = api("POST", "/servicePrincipals", {"displayName": "LDAP to SCIM"})["id"]
    sync = f"/servicePrincipals/{app}/synchronization"
    body = {"templateId": "ldapToScim", "schedule": {"interval": args.interval}}
    job = api("POST", f"{sync}/jobs", body)["id"]
    if args.schema:
        api("PUT", f"{sync}/jobs/{job}/schema", json.loads(Path(args.schema).read_text()))
    secrets = {
        "SourceUrl": args.ldap_url,
        "SourceUserName": args.ldap_bind_dn,
        "SourcePassword": args.ldap_password,
        "SourceBaseDn": args.ldap_base_dn,
        "SourceDeltaMode": args.ldap_delta_mode,
        "BaseAddress": args.scim_url,
        "SecretToken": args.scim_token,
    }
    api("PUT", f"{sync}/secrets", {"value": [{"key": k, "value": v} for k, v in secrets.items()]})
    api("POST", f"{sync}/jobs/{job}/start")
    api.session.close()
    print(job)
    return str(job)


if __name__ == "__main__":
    main()
