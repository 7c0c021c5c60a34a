"""The roles the deploying identity (Cloud Build's service account) needs, derived from the
resources ``infra/`` creates, with the reference in ``infra/gcp_iam.json``.

    python -m local.deployer_roles     # the table the README's deployment guide shows

Terraform creates, reads, updates and deletes each resource, and reads and sets the IAM policy
of each ``*_iam_member``; the API methods it calls per resource type are listed in CRUD below,
mapped to permissions with the reference, then covered by predefined roles (per service the
fewest, smallest roles that hold every needed permission). The organisation log sink is
created on the organisation, so its role is granted there.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from local.provider_schema import used_types

REPO = Path(__file__).resolve().parent.parent
REFERENCE = REPO / "infra" / "gcp_iam.json"


def _crud(prefix: str, create: str = "create", update: str = "patch") -> list[str]:
    return [f"{prefix}.{create}", f"{prefix}.get", f"{prefix}.{update}", f"{prefix}.delete"]


def _iam(prefix: str) -> list[str]:
    return [f"{prefix}.getIamPolicy", f"{prefix}.setIamPolicy"]


# Resource type -> API methods Terraform calls for it (google provider 6.50.0).
CRUD: dict[str, list[str]] = {
    "google_pubsub_topic": _crud("pubsub.projects.topics"),
    "google_pubsub_subscription": _crud("pubsub.projects.subscriptions"),
    "google_pubsub_topic_iam_member": _iam("pubsub.projects.topics"),
    "google_pubsub_subscription_iam_member": _iam("pubsub.projects.subscriptions"),
    "google_storage_bucket": _crud("storage.buckets", "insert"),
    "google_storage_bucket_iam_member": _iam("storage.buckets"),
    "google_bigquery_dataset": _crud("bigquery.datasets", "insert"),
    # Dataset IAM is the dataset's access list: read it, write it back.
    "google_bigquery_dataset_iam_member": ["bigquery.datasets.get", "bigquery.datasets.update"],
    "google_service_account": _crud("iam.projects.serviceAccounts"),
    "google_secret_manager_secret": _crud("secretmanager.projects.secrets"),
    "google_secret_manager_secret_iam_member": _iam("secretmanager.projects.secrets"),
    "google_cloudfunctions2_function": [
        *_crud("cloudfunctions.projects.locations.functions"),
        "cloudfunctions.projects.locations.operations.get",
    ],
    "google_cloud_run_v2_job": _crud("run.projects.locations.jobs"),
    "google_cloud_run_v2_job_iam_member": _iam("run.projects.locations.jobs"),
    "google_cloud_run_v2_service": _crud("run.projects.locations.services"),
    "google_cloud_run_v2_service_iam_member": _iam("run.projects.locations.services"),
    "google_cloud_run_service_iam_member": _iam("run.projects.locations.services"),
    "google_cloud_scheduler_job": _crud("cloudscheduler.projects.locations.jobs"),
    "google_artifact_registry_repository": _crud(
        "artifactregistry.projects.locations.repositories"
    ),
    "google_logging_organization_sink": _crud("logging.organizations.sinks", update="update"),
}
# Permissions no method of the reference names, from the provider's and the APIs' docs.
EXTRA: dict[str, list[str]] = {
    # Project IAM is read and written as the whole policy (Resource Manager API).
    "google_project_iam_member": [
        "resourcemanager.projects.getIamPolicy",
        "resourcemanager.projects.setIamPolicy",
    ],
    "google_project": ["resourcemanager.projects.get"],
    # Deploying a function, job or service that runs as a service account is acting as it.
    "google_cloudfunctions2_function": ["iam.serviceAccounts.actAs"],
    "google_cloud_run_v2_job": ["iam.serviceAccounts.actAs"],
    "google_cloud_run_v2_service": ["iam.serviceAccounts.actAs"],
    # IAP's get/setIamPolicy check a permission named by the resource's type; for a Cloud Run
    # service behind IAP (the desk) that is a web service's.
    "google_iap_web_cloud_run_service_iam_member": [
        "iap.webServices.getIamPolicy",
        "iap.webServices.setIamPolicy",
    ],
    # Scheduler publishes as its service agent; creating the job needs only its own API.
}
ORGANIZATION = {"google_logging_organization_sink"}
# What the build itself does besides Terraform (cloudbuild.yaml), and the role it needs.
BUILD = {
    "roles/logging.logWriter": "the build writes its logs (CLOUD_LOGGING_ONLY)",
}


def needed_permissions(types: set[str], ref: dict) -> dict[str, set[str]]:
    """{"project": {...}, "organization": {...}} permissions for the given resource types."""
    out: dict[str, set[str]] = {"project": set(), "organization": set()}
    for typ in sorted(types):
        scope = "organization" if typ in ORGANIZATION else "project"
        for method in CRUD.get(typ, []):
            service = method.split(".")[0]
            permissions = ref["methods"].get(service, {}).get(method)
            if permissions is None:
                raise KeyError(f"{typ}: method {method} is not in the reference")
            out[scope] |= set(permissions)
        out[scope] |= set(EXTRA.get(typ, []))
        if typ not in CRUD and typ not in EXTRA:
            raise KeyError(f"{typ}: no API methods listed for it in local/deployer_roles.py")
    return out


def _candidates(service: str, ref: dict) -> dict[str, set[str]]:
    """Predefined roles of one service (for IAM, the service-account roles only: the other
    roles/iam.* are bundles for job functions)."""
    prefix = "roles/iam.serviceAccount" if service == "iam" else f"roles/{service}."
    return {
        name: set(perms)
        for name, perms in ref["roles"].items()
        if name.startswith(prefix) and not name.endswith("serviceAgent")
    }


def cover(permissions: set[str], ref: dict) -> list[str]:
    """Per service, the smallest predefined role of that service holding all its needed
    permissions (or, when none does, a few roles chosen greedily)."""
    chosen: set[str] = set()
    by_service: dict[str, set[str]] = {}
    for permission in permissions:
        by_service.setdefault(permission.split(".")[0], set()).add(permission)
    for service, needed in sorted(by_service.items()):
        roles = _candidates(service, ref)
        whole = [r for r in roles if needed <= roles[r]]
        if whole:
            chosen.add(min(whole, key=lambda r: (len(roles[r]), r)))
            continue
        left = set(needed)
        while left:
            best = max(roles, key=lambda r: (len(roles[r] & left), -len(roles[r]), r))
            if not roles[best] & left:
                raise ValueError(f"no predefined {service} role holds {sorted(left)}")
            chosen.add(best)
            left -= roles[best]
    # A role already holding another chosen role's permissions makes that one redundant.
    perms = {r: set(ref["roles"][r]) for r in chosen}
    return sorted(r for r in chosen if not any(o != r and perms[r] < perms[o] for o in chosen))


def deployer_roles(
    infra: Path = REPO / "infra", ref_path: Path = REFERENCE
) -> dict[str, list[str]]:
    """Roles for the project and for the organisation (the optional log sink)."""
    ref = json.loads(ref_path.read_text())
    found, beta = used_types(infra), used_types(infra, beta=True)
    types = found["resource"] | found["data"] | beta["resource"] | beta["data"]
    needed = needed_permissions(types, ref)
    return {scope: cover(perms, ref) if perms else [] for scope, perms in needed.items()}


# What must exist before the first full apply, in order, and who reads it first: Cloud Build
# pushes images and the function source before Terraform applies, the RBAC config is uploaded
# before the reconciler starts, and the key secret needs a version before a job encrypts.
BOOTSTRAP: list[tuple[str, str]] = [
    ("google_artifact_registry_repository.images", "Cloud Build pushes the images here"),
    ("google_storage_bucket.source", "Cloud Build uploads the function source here"),
    ("google_storage_bucket.data", "the RBAC config is uploaded here (rbac_config_uri)"),
    ('google_secret_manager_secret.secret["artifact_keys"]', "gets its first version next"),
]


def bootstrap_command(env: str = "dev") -> str:
    """The one-time ``terraform apply -target=...`` of the deployment guide."""
    from shared.platform import Names

    data = Names(env, "<project>").bucket("data")
    targets = " ".join(f"-target='module.platform.{address}'" for address, _ in BOOTSTRAP)
    return (
        f"terraform apply {targets} -var-file=env/{env}.tfvars -var project_id=<project> "
        "-var image_tag=bootstrap "
        f"-var rbac_config_uri=gs://{data}/rbac.yaml"
    )


def main() -> int:
    roles = deployer_roles()
    print("roles of the deploying identity (Cloud Build's service account):")
    for scope, names in roles.items():
        print(f"  on the {scope}: {', '.join(names) or '-'}")
    print("  on the Terraform state bucket: roles/storage.objectAdmin")
    for role, why in BUILD.items():
        print(f"  on the project, for the build itself: {role} ({why})")
    from shared.platform import Names, declaration

    build = declaration()["build_account"]
    print(
        f"the functions are built as {Names('dev', '<project>').account_email('build')} "
        f"(Terraform creates it with {', '.join(build['project'])} on the project and "
        f"{', '.join(build['buckets'].values())} on the source bucket; the deploying identity "
        "acts as it)"
    )
    print("bootstrap (infra/deploy with env/dev.tfvars, once, before the first build):")
    print(f"  {bootstrap_command('dev')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
