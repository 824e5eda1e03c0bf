"""Where a synced collection's documents come from, as data (one pydantic model per kind).

Specs are stored and shown, so they hold no secret: credentials are only the *names* of environment
variables or the path of a secrets file. A field meant for a literal secret does not exist, and a URL
with a password in it is refused. Errors from ``parse_spec`` never quote the input.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from lamina.errors import ConfigError

SourceKind = Literal["folder", "web", "git", "s3", "webdav"]

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_SECRET_KEYS = {
    "password", "passwd", "secret", "secret_key", "access_key", "secret_access_key", "access_key_id",
    "aws_access_key_id", "aws_secret_access_key", "token", "api_key", "username", "session_token",
}  # fmt: skip


def _http_url(value: str, what: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{what} must be an http(s) URL with a host")
    if parts.username or parts.password:
        raise ValueError(f"{what} must not carry credentials (user:password@); name environment variables")
    return value


def _env_name(value: str | None) -> str | None:
    if value is not None and not _ENV_NAME.match(value):
        raise ValueError("must be the NAME of an environment variable (letters, digits, _), not its value")
    return value


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _no_literal_secrets(cls, data: Any) -> Any:
        if isinstance(data, dict):
            found = sorted(k for k in data if isinstance(k, str) and k.lower() in _SECRET_KEYS)
            if found:
                raise ValueError(
                    f"{', '.join(found)}: a source holds no literal credentials; name environment "
                    "variables (*_env fields) or a secrets_file instead"
                )
        return data


class _Globbed(_Spec):
    include: list[str] = Field(default_factory=lambda: ["**/*"], description="Globs a file must match.")
    exclude: list[str] = Field(
        default_factory=lambda: ["**/.*", "**/.*/**"], description="Globs that drop a file (hidden ones)."
    )


class FolderSpec(_Globbed):
    kind: Literal["folder"]
    path: str = Field(min_length=1, description="A folder on the machine that runs the sync.")


class WebSpec(_Spec):
    kind: Literal["web"]
    url: str = Field(description="The start page; links are followed on its host only.")
    sitemap: str | None = Field(None, description="A sitemap.xml (or sitemap index) on the same host.")
    max_depth: int = Field(2, ge=0, le=10, description="Links followed from the start page.")
    max_pages: int = Field(200, ge=1, le=100_000)

    @field_validator("url", "sitemap")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else _http_url(value, "url")

    @model_validator(mode="after")
    def _same_host(self) -> WebSpec:
        if self.sitemap and urlsplit(self.sitemap).hostname != urlsplit(self.url).hostname:
            raise ValueError("sitemap must be on the same host as url")
        return self


class GitSpec(_Globbed):
    kind: Literal["git"]
    url: str = Field(min_length=1, description="Any git URL: https, ssh, file:// or a local path.")
    branch: str | None = Field(None, description="Default: the remote's default branch.")
    paths: list[str] = Field(default_factory=list, description="Sub-folders or globs; default all.")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if value.startswith("-"):
            raise ValueError("must not start with '-'")
        parts = urlsplit(value)
        if parts.scheme in ("http", "https") and (parts.username or parts.password):
            raise ValueError("an http(s) git URL must not carry credentials; use a git credential helper")
        if parts.password:
            raise ValueError("a git URL must not carry a password")
        return value

    @field_validator("branch")
    @classmethod
    def _branch(cls, value: str | None) -> str | None:
        if value is not None and (not value or value.startswith("-") or ".." in value or " " in value):
            raise ValueError("must be a branch name")
        return value


class S3Spec(_Spec):
    kind: Literal["s3"]
    bucket: str = Field(pattern=r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$", description="The bucket's name.")
    prefix: str = Field("", description="A folder inside the bucket ('' for all of it).")
    endpoint_url: str | None = Field(None, description="An S3-compatible server (MinIO ...); default AWS.")
    region: str | None = None
    access_key_env: str = "AWS_ACCESS_KEY_ID"
    secret_key_env: str = "AWS_SECRET_ACCESS_KEY"
    secrets_file: Path | None = Field(None, description="TOML or JSON with access_key and secret_key.")

    @field_validator("endpoint_url")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        return None if value is None else _http_url(value, "endpoint_url")

    @field_validator("access_key_env", "secret_key_env")
    @classmethod
    def _envs(cls, value: str) -> str:
        return _env_name(value) or value


class WebDavSpec(_Spec):
    kind: Literal["webdav"]
    url: str = Field(description="A WebDAV folder (Nextcloud, SharePoint's DAV, Apache mod_dav ...).")
    username_env: str | None = None
    password_env: str | None = None
    secrets_file: Path | None = Field(None, description="TOML or JSON with username and password.")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _http_url(value, "url")

    @field_validator("username_env", "password_env")
    @classmethod
    def _envs(cls, value: str | None) -> str | None:
        return _env_name(value)

    @model_validator(mode="after")
    def _credentials(self) -> WebDavSpec:
        if (self.username_env is None) != (self.password_env is None):
            raise ValueError("username_env and password_env go together")
        if self.secrets_file is not None and self.username_env is not None:
            raise ValueError("give either username_env/password_env or secrets_file, not both")
        return self


SourceSpec = Annotated[FolderSpec | WebSpec | GitSpec | S3Spec | WebDavSpec, Field(discriminator="kind")]
SOURCE_KINDS: tuple[str, ...] = ("folder", "web", "git", "s3", "webdav")

_ADAPTER: TypeAdapter[SourceSpec] = TypeAdapter(SourceSpec)


def _explain(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors(include_url=False, include_input=False, include_context=False):
        where = ".".join(str(p) for p in err["loc"] if p not in SOURCE_KINDS) or "source"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown field"
        elif err["type"] == "union_tag_invalid":
            msg = f"kind must be one of {', '.join(SOURCE_KINDS)}"
        lines.append(f"{where}: {msg}")
    return "invalid source: " + "; ".join(lines)


def parse_spec(data: dict[str, Any]) -> SourceSpec:
    """A spec from a mapping (TOML, JSON); ``ConfigError`` saying what is wrong, without quoting values."""
    try:
        return _ADAPTER.validate_python(data)
    except ValidationError as exc:
        raise ConfigError(_explain(exc)) from None


def describe(spec: SourceSpec) -> dict[str, Any]:
    """The spec as a JSON-safe dict (specs hold no secret: environment variable names at most)."""
    out: dict[str, Any] = spec.model_dump(mode="json")
    return out
