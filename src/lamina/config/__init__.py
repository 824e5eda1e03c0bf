"""One configuration object: ``lamina.toml`` overlaid by ``LAMINA_*`` environment variables.

Precedence (highest first): explicit keyword arguments, environment (``LAMINA_DATA_DIR``,
``LAMINA_CHUNKING__CHUNK_TOKENS`` for nested keys), the TOML file, defaults. The file is
``$LAMINA_CONFIG`` if set, else ``./lamina.toml`` if present. Unknown keys are errors, so a typo
never silently falls back to a default.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from pydantic import Field, ValidationError, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from lamina.config.data import (
    ENGINE_NAMES,
    OCR_ENGINES,
    ChunkingSettings,
    EmbeddingSettings,
    FetchSettings,
    IngestEngineName,
    IngestSettings,
    OcrEngineName,
    RerankSettings,
    SearchSettings,
    SourceSettings,
    StoreSettings,
)
from lamina.config.models import DEFAULT_MODEL, EndpointSettings, ModelSettings, RagSettings, builtin_models
from lamina.config.serve import LimitSettings, ServeSettings
from lamina.errors import ConfigError

__all__ = [
    "DEFAULT_MODEL",
    "ENGINE_NAMES",
    "OCR_ENGINES",
    "ChunkingSettings",
    "EmbeddingSettings",
    "EndpointSettings",
    "FetchSettings",
    "IngestEngineName",
    "IngestSettings",
    "LimitSettings",
    "ModelSettings",
    "OcrEngineName",
    "RagSettings",
    "RerankSettings",
    "SearchSettings",
    "ServeSettings",
    "Settings",
    "SourceSettings",
    "StoreSettings",
    "load_settings",
    "schema_of",
    "tenant_schema",
    "with_schema",
]

CONFIG_ENV = "LAMINA_CONFIG"
DEFAULT_CONFIG_FILE = "lamina.toml"


class Settings(BaseSettings):
    """Everything Lamina reads from the outside, validated once at start-up."""

    model_config = SettingsConfigDict(
        env_prefix="LAMINA_", env_nested_delimiter="__", extra="forbid", validate_default=True
    )

    data_dir: Path = Field(
        default_factory=lambda: Path.home() / ".lamina", description="Where Lamina keeps state."
    )
    database_url: str | None = Field(
        None,
        description=(
            "SQLAlchemy URL for durable state (collection registries, keys, jobs, request log, UI): "
            "postgresql+psycopg://… puts it in Postgres, a schema per tenant plus one for the gateway "
            "(needs lamina[postgres]). Unset: SQLite files in data_dir."
        ),
    )
    redis_url: str | None = Field(
        None,
        description=(
            "redis://… shared by every replica: rate and budget counters, the response and semantic "
            "caches, circuit breakers and in-flight limits (needs lamina[redis]). Unset: the database "
            "and each process's memory."
        ),
    )
    uploads_dir: Path | None = Field(
        None, description="Where uploaded originals are kept; a path every replica and worker reads."
    )
    tenant: str = Field(
        "default", description="Whose workspace this is; the server sets it per tenant (a Postgres schema)."
    )
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    fetch: FetchSettings = Field(default_factory=FetchSettings)
    chunking: ChunkingSettings = Field(default_factory=ChunkingSettings)
    embedding: EmbeddingSettings = Field(default_factory=EmbeddingSettings)
    search: SearchSettings = Field(default_factory=SearchSettings)
    store: StoreSettings = Field(default_factory=StoreSettings)
    models: dict[str, ModelSettings] = Field(default_factory=dict, description="Extra or overridden models.")
    default_model: str = Field(
        DEFAULT_MODEL, description="The model a request or an answer gets when it names none."
    )
    rag: RagSettings = Field(default_factory=RagSettings)
    serve: ServeSettings = Field(default_factory=ServeSettings)
    sources: list[SourceSettings] = Field(
        default_factory=list, description="Sources collections stay in sync with ([[sources]])."
    )

    @model_validator(mode="after")
    def _with_builtin_models(self) -> Settings:
        self.models = {**builtin_models(), **self.models}
        for name, spec in self.models.items():
            unknown = [f for f in spec.fallbacks if f not in self.models or f == name]
            if unknown:
                raise ValueError(
                    f"models.{name}.fallbacks: {', '.join(unknown)} is not another configured model"
                )
        if self.default_model not in self.models:
            raise ValueError(
                f"default_model {self.default_model!r} is not among models: {', '.join(self.models)}"
            )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_path = _config_file()
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if toml_path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_path))
        return tuple(sources)

    def scratch(self, data_dir: Path) -> Settings:
        """These settings with all state under ``data_dir`` (SQLite even when ``database_url`` is
        set): a throwaway workspace for an eval or a benchmark never writes to the real database."""
        return self.model_copy(update={"data_dir": data_dir, "database_url": None})

    @property
    def registry_url(self) -> str:
        """This workspace's collection registry: its tenant's schema, or ``registry.db``."""
        if self.database_url:
            return with_schema(self.database_url, tenant_schema(self.tenant))
        return f"sqlite:///{self.data_dir / 'registry.db'}"

    @property
    def vectors_dir(self) -> Path:
        return self.data_dir / "vectors"

    @property
    def gateway_url(self) -> str:
        """Keys, jobs and the request log: the server's own state, apart from the data registry."""
        if self.database_url:
            return with_schema(self.database_url, "lamina_gateway")
        return f"sqlite:///{self.data_dir / 'gateway.db'}"


def tenant_schema(tenant: str) -> str:
    """A tenant's Postgres schema, one-to-one ("_" -> "__", "-" -> "_d"): no quoting needed."""
    return "lamina_t_" + tenant.replace("_", "__").replace("-", "_d")


SEARCH_PATH = "-csearch_path="  # libpq's "options": a setting for every connection


def with_schema(url: str, schema: str) -> str:
    """``url`` with every connection's ``search_path`` set to ``schema`` (Postgres); other URLs as given."""
    if not url.startswith("postgresql"):
        return url
    return f"{url}{'&' if '?' in url else '?'}options={quote(SEARCH_PATH + schema)}"


def schema_of(url: str) -> str | None:
    """The schema ``with_schema`` put into ``url``, if any."""
    options = parse_qs(urlsplit(url).query).get("options", [""])[-1]
    return options.removeprefix(SEARCH_PATH) if options.startswith(SEARCH_PATH) else None


def _config_file() -> Path | None:
    explicit = os.environ.get(CONFIG_ENV)
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigError(f"{CONFIG_ENV}={explicit}: no such file")
        return path
    default = Path(DEFAULT_CONFIG_FILE)
    return default if default.is_file() else None


def load_settings(**overrides: Any) -> Settings:
    """Read and validate the configuration; a bad value is a ``ConfigError`` naming its key."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(root)'}: {err['msg']}" for err in exc.errors()
        )
        source = os.environ.get(CONFIG_ENV) or (
            DEFAULT_CONFIG_FILE if Path(DEFAULT_CONFIG_FILE).is_file() else ""
        )
        where = f" (from {source} or LAMINA_* variables)" if source else " (from LAMINA_* variables)"
        raise ConfigError(f"invalid configuration{where}: {problems}") from None
    except (OSError, ValueError) as exc:  # unreadable or malformed TOML
        raise ConfigError(f"cannot read configuration: {exc}") from None
