"""The reconciler's configuration (YAML), validated with errors that name the bad field.

```yaml
airflow:
  url: https://composer-env.example.com
  auth: {type: basic, username: reconciler, password_env: AIRFLOW_PASSWORD}  # or bearer/google
admin_groups: [airflow-admins@example.com]
base_role: Viewer            # project roles = its permissions minus the global DAG ones
projects:
  pricing:
    role: project-pricing
    groups: [pricing-team@example.com]
    dags: {prefixes: [pricing_], tags: [pricing]}
allow_list: [reconciler@example.iam.gserviceaccount.com, breakglass@example.com]
max_revocations: 25
shared_dags: [daily_cleanup]         # DAGs two projects may both select, on purpose
builtin_roles_of_members: report     # or remove / keep: members' Op, User, Viewer, Admin
reconciler: reconciler@example.iam.gserviceaccount.com   # never stripped of a role
adopt_roles: [pricing-team]          # existing roles a project may take over (see below)
role_pattern: "project-.*"           # optional: how the reconciler's roles are named
max_concurrent_writes: 8             # users' writes in flight at once
```

A project's role that already exists in Airflow and that the reconciler did not create (it is
not in its ledger of owned roles) is someone's own role: taking it over rewrites its
permissions and takes it from holders outside the project's groups. The run refuses and says
so, naming the holders, until the role is listed in ``adopt_roles``; then the dry run and the
report say "adopting". An adopted role is managed while it is listed (no project wanting it:
nobody holds it) and never deleted: once it is out of use, take it off the list and it is its
owner's again.

The ledger of owned roles is what lets a renamed project's old role be retired. A run that
finds it missing while Airflow holds roles that look like the reconciler's (a project's role,
one matching ``role_pattern``, a "~next" stand-in) stops instead of silently retiring nothing;
``retail rbac ledger rebuild`` records them again (a dry run unless ``--apply``).

Secrets are never in the file: a password or token is read from the environment variable the
config names.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from shared.errors import InvalidRequest
from shared.settings import named_secret

_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
# 59 at most: Airflow keeps 64, and a role being switched has a "~next" stand-in beside it.
_ROLE = re.compile(r"[A-Za-z0-9][A-Za-z0-9 _.-]{0,58}")
_ENV = re.compile(r"[A-Z_][A-Z0-9_]*")


def _email(value: str) -> str:
    if not _EMAIL.fullmatch(value):
        raise ValueError(f"not an email address: {value!r}")
    return value.lower()


def _role(value: str) -> str:
    if not _ROLE.fullmatch(value):
        raise ValueError(f"not a valid role name: {value!r}")
    return value


def _env(value: str) -> str:
    if not _ENV.fullmatch(value):
        raise ValueError(f"not an environment variable name: {value!r}")
    return value


# Airflow's own roles: a project role with one of these names would rewrite a role every user
# may hold (Composer registers users as Op) and strip it from people in no group.
RESERVED_ROLES = ("Admin", "Op", "User", "Viewer", "Public")


def reserved_role_problem(role: str, also: tuple[str, ...] = ()) -> str | None:
    """Why ``role`` may not be a project role (case-insensitively a built-in), or None."""
    for name in (*RESERVED_ROLES, *also):
        if role.strip().lower() == name.lower():
            return (
                f"{role!r} is Airflow's built-in role {name!r}; a project needs a role of its "
                f"own (e.g. 'project-{role.strip().lower()}')"
            )
    return None


Email = Annotated[str, AfterValidator(_email)]
RoleName = Annotated[str, AfterValidator(_role)]
EnvName = Annotated[str, AfterValidator(_env)]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class AirflowAuth(_Model):
    """How to authenticate: basic (Airflow 2) / token from /auth/token (Airflow 3), a bearer
    token from the environment, or a Google identity (Cloud Composer)."""

    type: Literal["basic", "bearer", "google"] = "basic"
    username: str | None = None
    password_env: EnvName | None = None
    token_env: EnvName | None = None

    @model_validator(mode="after")
    def _complete(self) -> AirflowAuth:
        if self.type == "basic" and not (self.username and self.password_env):
            raise ValueError("basic auth needs 'username' and 'password_env'")
        if self.type == "bearer" and not self.token_env:
            raise ValueError("bearer auth needs 'token_env'")
        return self

    def password(self) -> str:
        return _secret(self.password_env)

    def token(self) -> str:
        return _secret(self.token_env)


def _secret(name: str | None) -> str:
    value = named_secret(name or "")
    if not value:
        raise InvalidRequest(f"environment variable {name} (named in the RBAC config) is not set")
    return value


class AirflowTarget(_Model):
    url: Annotated[str, Field(pattern=r"^https?://[^\s]+$")]
    auth: AirflowAuth


class DagSelector(_Model):
    """Which DAGs belong to a project: by id prefix and/or by tag (a DAG matching any)."""

    prefixes: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=list)
    tags: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=list)
    ids: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=list)

    @model_validator(mode="after")
    def _something(self) -> DagSelector:
        if not (self.prefixes or self.tags or self.ids):
            raise ValueError("select DAGs by at least one of 'prefixes', 'tags' or 'ids'")
        return self

    def matches(self, dag_id: str, tags: set[str]) -> bool:
        return (
            dag_id in self.ids
            or any(dag_id.startswith(p) for p in self.prefixes)
            or bool(tags & set(self.tags))
        )


class Project(_Model):
    role: RoleName
    groups: list[Email] = Field(min_length=1)
    dags: DagSelector


class RbacConfig(_Model):
    airflow: AirflowTarget
    admin_groups: list[Email] = Field(default_factory=list)
    admin_role: RoleName = "Admin"
    base_role: RoleName = "Viewer"
    projects: dict[Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")], Project]
    allow_list: list[Email] = Field(default_factory=list)
    max_revocations: int = Field(default=25, ge=0)
    # DAGs two projects may both select on purpose; any other overlap is refused.
    shared_dags: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=list)
    # The identity the reconciler runs as (its Airflow user's name or email); by default the
    # basic-auth username. It is never stripped of a role: a plan that would is refused.
    reconciler: str | None = None
    # Airflow's broad roles (Op, User, Viewer, Admin) let a group-managed user see every DAG;
    # Composer registers new users as Op. report (default): say who and why every run;
    # remove: take them away from managed users (counted against max_revocations); keep.
    builtin_roles_of_members: Literal["keep", "remove", "report"] = "report"
    # The role Composer gives a newly registered user: set [webserver]
    # rbac_user_registration_role and [api] composer_auth_user_registration_role to it (both
    # Op, which sees every DAG, by default). It must see no DAG: a user in no project group
    # keeps only it (with builtin_roles_of_members: remove, their broad roles go).
    registration_role: RoleName = "Public"
    # Existing roles, not created by the reconciler, that a project may take over.
    adopt_roles: list[RoleName] = Field(default_factory=list)
    # How the reconciler's roles are named (a regular expression the whole name matches):
    # with the ledger lost, a role matching it is evidence that the ledger existed.
    role_pattern: str | None = None
    # Users' writes in flight at once (roles are always written one at a time); bounded so
    # the webserver is not overrun (Airflow's default webserver runs 4 workers).
    max_concurrent_writes: int = Field(default=8, ge=1, le=32)

    @field_validator("role_pattern")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a regular expression: {value!r} ({exc})") from None
        return value

    @property
    def own_identity(self) -> str | None:
        who = self.reconciler or self.airflow.auth.username
        return who.lower() if who else None

    @model_validator(mode="after")
    def _registration_sees_nothing(self) -> RbacConfig:
        taken = {"Admin", "Op", "User", "Viewer", self.admin_role, self.base_role}
        if self.registration_role in taken:
            raise ValueError(
                f"registration_role: {self.registration_role!r} grants DAG access; new users "
                "must get a role that sees no DAG (Public)"
            )
        return self

    @model_validator(mode="after")
    def _knows_itself(self) -> RbacConfig:
        """With ``admin_groups`` the reconciler manages Admin: it takes Admin from everyone
        outside those groups and the allow-list, itself included unless it knows who it is.
        On Composer (auth ``google``) nothing names it but ``reconciler``."""
        if self.admin_groups and not self.own_identity:
            raise ValueError(
                "reconciler: admin_groups manages the Admin role, so the reconciler must know "
                "its own identity or it strips its own Admin on the first run; set reconciler "
                "to its service account's email (terraform output rbac_service_account)"
            )
        return self

    @model_validator(mode="after")
    def _distinct_roles(self) -> RbacConfig:
        seen: dict[str, str] = {}
        for name, project in self.projects.items():
            problem = reserved_role_problem(project.role, (self.admin_role, self.base_role))
            if problem:
                raise ValueError(f"projects.{name}.role: {problem}")
            if project.role in seen:
                other = seen[project.role]
                raise ValueError(f"projects.{name}.role: {project.role!r} is also {other}'s role")
            seen[project.role] = name
        return self

    @property
    def managed_roles(self) -> set[str]:
        """Roles the reconciler grants and revokes; any other role is left alone."""
        return {p.role for p in self.projects.values()} | (
            {self.admin_role} if self.admin_groups else set()
        )

    def groups(self) -> list[str]:
        """Every group the desired state depends on, in a stable order."""
        found = list(self.admin_groups)
        for project in self.projects.values():
            found += [g for g in project.groups if g not in found]
        return list(dict.fromkeys(found))


def _where(loc: tuple) -> str:
    return ".".join(str(p) for p in loc if not str(p).startswith("function-after")) or "<config>"


def parse_config(data: object, source: str = "<config>") -> RbacConfig:
    """Validate a decoded config; the error names the file and the first bad field."""
    if not isinstance(data, dict):
        raise InvalidRequest(f"{source}: expected a mapping at the top level")
    try:
        return RbacConfig.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = f"{_where(first['loc'])}: " if first["loc"] else ""
        reason = first["msg"].removeprefix("Value error, ")
        raise InvalidRequest(f"{source}: {where}{reason}") from None


class _StrictLoader(yaml.SafeLoader):
    """A safe YAML loader that refuses a key written twice in one mapping (plain YAML keeps
    the last one and silently drops the first project)."""


def _no_duplicates(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: dict[object, int] = {}
    for key_node, _value in node.value:
        key = loader.construct_object(key_node, deep=deep)
        line = key_node.start_mark.line + 1
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} is written twice (lines {seen[key]} and {line})",
                key_node.start_mark,
            )  # fmt: skip
        seen[key] = line
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicates)


def parse_yaml(text: str, source: str) -> RbacConfig:
    """Parse and validate config text; a duplicate key or bad YAML names the file and line."""
    try:
        data = yaml.load(text, Loader=_StrictLoader)
    except yaml.YAMLError as exc:
        raise InvalidRequest(f"{source}: not valid YAML: {exc}") from None
    return parse_config(data, source)


def load_config(path: str | Path) -> RbacConfig:
    """Read and validate a YAML config file."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise InvalidRequest(f"{path}: no such file") from None
    return parse_yaml(text, str(path))
