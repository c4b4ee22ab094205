"""Settings, read from the environment and `.env` (pydantic-settings)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

from limits import parse
from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from chatbot.model import is_valid_session_id


class BusyPolicy(StrEnum):
    """What `POST /api/chat` does while the session's turn is still running."""

    REJECT = "reject"
    QUEUE = "queue"
    INTERRUPT = "interrupt"


class ProviderName(StrEnum):
    """Where the agent's model runs."""

    ANTHROPIC = "anthropic"
    OPENAI = "openai"
    LOCAL = "local"
    SCRIPTED = "scripted"


class AuthMethod(StrEnum):
    """A kind of credential the server accepts (AUTH lists them)."""

    NONE = "none"
    ANONYMOUS = "anonymous"
    SIWE = "siwe"
    APIKEY = "apikey"
    JWT = "jwt"


class Network(BaseModel):
    """One EVM network a session can switch to."""

    chain_id: int = Field(gt=0)
    rpc_url: str = Field(min_length=1)
    explorer_url: str | None = Field(default=None, description="For links in the UI.")
    currency: str = Field(default="ETH", min_length=1, max_length=16)
    ens_registry: str | None = Field(
        default=None,
        pattern=r"^0x[0-9a-fA-F]{40}$",
        description="The ENS registry's address; set on mainnet and Sepolia by default.",
    )


ENS_REGISTRY = "0x00000000000C2E074eC69A0dFb2997BA6C7d2e1e"
"""The ENS registry, at the same address on mainnet and Sepolia."""


def _default_networks() -> dict[str, Network]:
    """Public networks on keyless public RPC endpoints, and the local chain of development.

    Public endpoints are rate-limited and best-effort: an operator sets NETWORKS to its
    own nodes (or a provider's, with a key in the URL) for real use.
    """
    return {
        "mainnet": Network(
            chain_id=1,
            rpc_url="https://ethereum-rpc.publicnode.com",
            explorer_url="https://etherscan.io",
            ens_registry=ENS_REGISTRY,
        ),
        "sepolia": Network(
            chain_id=11155111,
            rpc_url="https://ethereum-sepolia-rpc.publicnode.com",
            explorer_url="https://sepolia.etherscan.io",
            ens_registry=ENS_REGISTRY,
        ),
        "base": Network(
            chain_id=8453, rpc_url="https://mainnet.base.org", explorer_url="https://basescan.org"
        ),
        "arbitrum": Network(
            chain_id=42161,
            rpc_url="https://arb1.arbitrum.io/rpc",
            explorer_url="https://arbiscan.io",
        ),
        "optimism": Network(
            chain_id=10,
            rpc_url="https://mainnet.optimism.io",
            explorer_url="https://optimistic.etherscan.io",
        ),
        "polygon": Network(
            chain_id=137,
            rpc_url="https://polygon-rpc.com",
            explorer_url="https://polygonscan.com",
            currency="POL",
        ),
        "testnet": Network(chain_id=31337, rpc_url="http://127.0.0.1:8545"),
    }


class Settings(BaseSettings):
    """Every knob of the server; each one is listed in the README with its default."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True)

    backend_host: str = "127.0.0.1"
    backend_port: int = Field(default=8080, ge=0, le=65535)
    allow_anonymous_remote: bool = False
    log_level: str = "info"

    llm_provider: ProviderName | None = None
    anthropic_api_key: SecretStr | None = None
    anthropic_model: str = "claude-sonnet-5-5"
    anthropic_base_url: str | None = None
    openai_api_key: SecretStr | None = None
    openai_model: str = "gpt-6.2-sol"
    openai_base_url: str | None = None
    local_model_path: str | None = None
    local_context_tokens: int = Field(default=2048, ge=256)
    local_threads: int | None = Field(default=None, ge=1)
    scripted_reply: str = "You said: {message}"
    scripted_tokens_per_second: float = Field(default=20.0, ge=0)

    llm_max_output_tokens: int = Field(default=1024, ge=16)
    llm_context_tokens: int | None = Field(default=None, ge=256)
    llm_timeout_seconds: float = Field(default=60.0, gt=0)
    llm_max_retries: int = Field(default=3, ge=0, le=10)
    llm_retry_initial_seconds: float = Field(default=0.5, ge=0)
    llm_retry_max_seconds: float = Field(default=8.0, ge=0)
    max_tool_rounds: int = Field(default=8, ge=1)
    llm_titles: bool = True
    wallet_tx_timeout_seconds: float = Field(default=600.0, gt=0)
    mcp_config: Path = Path("mcp.json")
    mcp_connect_timeout_seconds: float = Field(default=15.0, ge=0)
    docs_enabled: bool = True
    docs_dir: Path = Path(__file__).resolve().parent / "guide"
    docs_index: Path = Path("var/docs-index.sqlite")
    etherscan_api_key: SecretStr | None = None
    etherscan_api_url: str = "https://api.etherscan.io/v2/api"
    sourcify_url: str = "https://sourcify.dev/server"

    ui_dir: Path = Path(__file__).resolve().parents[2] / "frontend" / "app" / "dist"

    database_url: str = "sqlite:///./var/chatbot.db"
    history_retention_days: float = Field(default=30.0, gt=0)
    snapshot_messages: int = Field(default=200, ge=1)
    stream_save_interval_seconds: float = Field(default=2.0, gt=0)

    session_timeout_seconds: float = Field(default=1800.0, gt=0)
    cleanup_interval_seconds: float = Field(default=300.0, gt=0)
    max_sessions: int = Field(default=100_000, ge=1)
    max_message_length: int = Field(default=8000, ge=1)
    max_body_bytes: int = Field(default=256 * 1024, ge=1024)
    rate_limit_messages: str = "30/minute"
    rate_limit_auth: str = "10/minute"
    max_turns_per_principal: int = Field(default=3, ge=1)
    max_sessions_per_principal: int = Field(default=1000, ge=1)
    max_streams_per_principal: int = Field(default=64, ge=1)
    busy_policy: BusyPolicy = BusyPolicy.REJECT
    max_queued_messages: int = Field(default=8, ge=1)
    default_session_id: str | None = None
    cors_origins: Annotated[list[str] | None, NoDecode] = None

    auth: Annotated[frozenset[AuthMethod], NoDecode] = frozenset({AuthMethod.NONE})
    auth_secret: SecretStr | None = None
    auth_token_ttl_seconds: float = Field(default=7 * 86400.0, ge=60)
    siwe_domain: str | None = None
    siwe_nonce_ttl_seconds: float = Field(default=300.0, ge=10)
    api_keys: SecretStr | None = None
    jwt_secret: SecretStr | None = None
    jwt_public_key: SecretStr | None = None
    jwt_audience: str | None = None
    jwt_issuer: str | None = None

    event_buffer_size: int = Field(default=1024, ge=16)
    subscriber_queue_size: int = Field(default=512, ge=8)
    max_streams: int = Field(default=20_000, ge=1)
    max_streams_per_session: int = Field(default=32, ge=1)
    sse_keepalive_seconds: float = Field(default=15.0, gt=0)
    legacy_stream_min_interval_ms: float = Field(default=100.0, ge=0)

    redis_url: SecretStr | None = None
    redis_prefix: str = Field(default="chatbot:", max_length=64)
    turn_lease_seconds: float = Field(default=10.0, ge=1)
    recover_turns: bool = True

    networks: dict[str, Network] = Field(default_factory=_default_networks)
    default_network: str | None = "mainnet"

    @field_validator(
        "anthropic_api_key",
        "openai_api_key",
        "redis_url",
        "auth_secret",
        "api_keys",
        "jwt_secret",
        "jwt_public_key",
        "etherscan_api_key",
        mode="before",
    )
    @classmethod
    def _empty_key_is_no_key(cls, value: object) -> object:
        # `ANTHROPIC_API_KEY=` in a .env file means "not set", not "set to nothing".
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    @field_validator("auth", mode="before")
    @classmethod
    def _split_auth(cls, value: object) -> object:
        if isinstance(value, str):
            return frozenset(part.strip().lower() for part in value.split(",") if part.strip())
        return value

    @field_validator("auth")
    @classmethod
    def _none_alone(cls, value: frozenset[AuthMethod]) -> frozenset[AuthMethod]:
        if not value:
            return frozenset({AuthMethod.NONE})
        if AuthMethod.NONE in value and len(value) > 1:
            raise ValueError("AUTH=none cannot be combined with other methods")
        return value

    @model_validator(mode="after")
    def _credentials_configured(self) -> Settings:
        if AuthMethod.APIKEY in self.auth:
            self.api_key_table()  # raises on a malformed list
        if AuthMethod.JWT in self.auth and self.jwt_secret is None and self.jwt_public_key is None:
            raise ValueError("AUTH=jwt needs JWT_SECRET (HS256) or JWT_PUBLIC_KEY (RS256/ES256)")
        issues_tokens = bool(self.auth & {AuthMethod.ANONYMOUS, AuthMethod.SIWE})
        if issues_tokens and self.auth_secret is None and self.redis_url is not None:
            raise ValueError(
                "AUTH_SECRET must be set in a cluster: every worker checks the tokens of the others"
            )
        if self.auth_secret is not None and len(self.auth_secret.get_secret_value()) < 32:
            raise ValueError(
                "AUTH_SECRET must be at least 32 characters (e.g. openssl rand -hex 32)"
            )
        if self.requires_credentials and self.cors_origins is not None and "*" in self.cors_origins:
            raise ValueError(
                "CORS_ORIGINS=* cannot be used with sign-in (AUTH): browsers would send "
                "credentials to any site's scripts; list the origins"
            )
        return self

    @field_validator("networks")
    @classmethod
    def _at_least_one_network(cls, value: dict[str, Network]) -> dict[str, Network]:
        if not value:
            raise ValueError("NETWORKS must name at least one network")
        return value

    @field_validator("rate_limit_messages", "rate_limit_auth")
    @classmethod
    def _a_rate(cls, value: str) -> str:
        if value.strip():
            try:
                parse(value)
            except ValueError:
                raise ValueError(
                    "a rate reads like 30/minute or 500/hour (empty: no limit)"
                ) from None
        return value.strip()

    @field_validator("default_session_id")
    @classmethod
    def _valid_default_id(cls, value: str | None) -> str | None:
        if value is not None and not is_valid_session_id(value):
            raise ValueError("DEFAULT_SESSION_ID must be 1-128 characters of [A-Za-z0-9_-]")
        return value

    @property
    def requires_credentials(self) -> bool:
        """True when AUTH asks every request for a principal (anything but `none`)."""
        return AuthMethod.NONE not in self.auth

    @property
    def allowed_origins(self) -> list[str]:
        """CORS_ORIGINS, else `*` without sign-in and the page's own origin only with it."""
        if self.cors_origins is not None:
            return self.cors_origins
        return [] if self.requires_credentials else ["*"]

    def api_key_table(self) -> dict[str, str]:
        """API_KEYS (`name:key,…`) as name -> key."""
        table: dict[str, str] = {}
        if self.api_keys is None:
            return table
        for entry in self.api_keys.get_secret_value().split(","):
            name, sep, key = entry.strip().partition(":")
            if not sep or not is_valid_session_id(name) or len(key) < 16:
                raise ValueError(
                    "API_KEYS is a comma list of name:key, names of [A-Za-z0-9_-], "
                    "keys of at least 16 characters"
                )
            table[name] = key
        return table

    @property
    def provider(self) -> ProviderName:
        """LLM_PROVIDER, or the first of anthropic/openai whose key is set, else local."""
        if self.llm_provider is not None:
            return self.llm_provider
        if self.anthropic_api_key is not None:
            return ProviderName.ANTHROPIC
        if self.openai_api_key is not None:
            return ProviderName.OPENAI
        return ProviderName.LOCAL

    @property
    def initial_network(self) -> str:
        """The network a new session starts on: DEFAULT_NETWORK, else the first listed."""
        if self.default_network and self.default_network in self.networks:
            return self.default_network
        return next(iter(self.networks))
