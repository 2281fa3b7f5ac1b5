"""Settings from `MINYI_*` environment variables, one object for every process."""

from __future__ import annotations

import re
import secrets
import string
from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SERVICES: tuple[str, ...] = ("intake", "routing", "suggestions", "scoring", "identity")

DEFAULT_PORTS: dict[str, int] = {
    "intake": 8101,
    "routing": 8102,
    "suggestions": 8103,
    "scoring": 8104,
    "identity": 8105,
    "postgres": 15432,
    "nats": 14222,
    "nats_monitor": 18222,
    "temporal": 17233,
    "temporal_ui": 18233,
    "gridsim": 8199,
    "web": 8100,
}


class Settings(BaseSettings):
    """Everything a Minyi process can be told; every field maps to `MINYI_<FIELD>`."""

    model_config = SettingsConfigDict(env_prefix="MINYI_", extra="ignore")

    home: Path = Path(".minyi")

    database_url: str | None = None
    # Connections each service keeps open. Enough for its busiest moments, so connections are not
    # opened and closed under load (each one costs PostgreSQL a new backend process).
    db_pool_size: int = Field(default=20, ge=1, le=200)
    nats_url: str | None = None
    # This process's NATS user (each service has its own; see shared/nats_permissions.py). None:
    # connect without, to a server that has no authorization.
    nats_user: str | None = None
    nats_password: SecretStr | None = None
    # Or the password in a file (a mounted secret); read once, when the settings are made.
    nats_password_file: Path | None = None
    temporal_address: str | None = None
    temporal_namespace: str = "default"

    http_host: str = "127.0.0.1"
    intake_port: int = DEFAULT_PORTS["intake"]
    routing_port: int = DEFAULT_PORTS["routing"]
    suggestions_port: int = DEFAULT_PORTS["suggestions"]
    scoring_port: int = DEFAULT_PORTS["scoring"]
    identity_port: int = DEFAULT_PORTS["identity"]
    # The pages people use (services/web); not one of SERVICES, since it owns no schema and no stream.
    web_port: int = DEFAULT_PORTS["web"]
    postgres_port: int = DEFAULT_PORTS["postgres"]
    nats_port: int = DEFAULT_PORTS["nats"]
    nats_monitor_port: int = DEFAULT_PORTS["nats_monitor"]
    temporal_port: int = DEFAULT_PORTS["temporal"]
    temporal_ui_port: int = DEFAULT_PORTS["temporal_ui"]
    # `minyi up --demo` only: the grid platform simulator.
    gridsim_port: int = DEFAULT_PORTS["gridsim"]

    jwt_issuer: str = "minyi"
    jwt_audience: str = "minyi"
    # Production: the identity provider's JWKS. Development: the key `minyi token` signs with.
    jwt_jwks_url: str | None = None
    jwt_public_key_file: Path | None = None
    jwt_leeway_seconds: int = 30

    # JSON keyring for personal data (see shared/pii.py, `minyi pii-keys create`).
    pii_keys_file: Path | None = None

    # Secret for signing QR codes (raw bytes, at least 32).
    code_secret_file: Path | None = None
    # Without the two files above, make development ones under MINYI_HOME. Only the embedded stack
    # (`minyi up`) and tests say so: a production service that silently made its own keyring would
    # encrypt citizens' data under a key nobody keeps, so it refuses to start instead.
    dev_secrets: bool = False
    # Where a scanned code leads: the citizen's report page, `{public_base_url}/q/{code}`, served by
    # the web tier. Intake still answers `/q/{code}` with a redirect there, for codes printed with
    # its own address.
    public_base_url: str = "http://127.0.0.1:8100"
    # A font with CJK glyphs for names under printed codes; the packaged Noto Sans CJK by default.
    label_font_file: Path | None = None

    # Where the web tier finds each service's public HTTP API (default: this host's port of it).
    intake_url: str | None = None
    routing_url: str | None = None
    suggestions_url: str | None = None
    scoring_url: str | None = None
    identity_url: str | None = None
    # The web tier's key for its form tokens (CSRF) and, later, its sessions; shared by its replicas.
    web_secret_file: Path | None = None
    # Seconds the web tier waits for a service before it shows the citizen a "try again" page.
    web_upstream_timeout_seconds: float = Field(default=10.0, gt=0)
    # Behind an ingress that ends TLS the web tier sees plain HTTP: this marks its cookies Secure anyway.
    web_secure_cookies: bool = False
    # Signing in to the workbench: the OpenID Connect provider (discovery at
    # {issuer}/.well-known/openid-configuration), this client's id, and its secret in a file (a
    # confidential client; none or an empty file: a public client, which PKCE still protects).
    oidc_issuer: str | None = None
    oidc_client_id: str | None = None
    oidc_client_secret_file: Path | None = None
    oidc_scopes: str = "openid profile"
    # Where the provider sends the browser back; registered with the provider. Default: the address
    # the browser used for /login, plus /auth/callback (set it behind an ingress that ends TLS).
    oidc_redirect_url: str | None = None
    # The key development sign-ins (`minyi login-url`, the web's /login/dev) sign with; read only where
    # MINYI_DEV_SECRETS is on. Default: `minyi token`'s, MINYI_HOME/keys/jwt-signing-key.pem.
    dev_login_key_file: Path | None = None

    # Behind an ingress that sets X-Forwarded-For; otherwise every caller would look like the proxy.
    trust_forwarded_for: bool = False
    # Shared with the web tier, which calls the services for citizens: a request carrying it may name
    # the citizen's address (see shared/proxy.py). None and no MINYI_DEV_SECRETS: no proxy is trusted.
    proxy_secret_file: Path | None = None
    # Per source and process: reports, uploads and ratings; and receipt lookups (against guessing).
    flood_limit: str = "20/minute"
    lookup_limit: str = "120/minute"
    # Where uploaded photos and recordings live in the embedded stack (default: MINYI_HOME/attachments).
    attachments_dir: Path | None = None
    # Bytes of uploads no report has claimed yet (kept a day): per source and intake process, and in all.
    unclaimed_upload_bytes_per_source: int = Field(default=100 * 1024 * 1024, ge=0)
    unclaimed_upload_bytes_total: int = Field(default=2 * 1024 * 1024 * 1024, ge=0)
    # How long intake keeps identity's answer for a QR code: a revoked code still works for that long.
    code_cache_seconds: float = Field(default=15.0, ge=0)
    # How often the report clocks look for due reminders and deadlines.
    clock_poll_seconds: float = Field(default=5.0, gt=0)

    # Routing: where grid platforms call back (default: this host's routing port), how tickets are
    # retried while a platform is down, and when similar reports make a hotspot.
    routing_callback_url: str | None = None
    # The congress term (届) that began in `term_first_year` is number `term_number`; terms last five years.
    term_first_year: int = Field(default=2022, ge=1954, le=2100)
    term_number: int = Field(default=14, ge=1, le=100)
    grid_timeout_seconds: float = Field(default=10.0, gt=0)
    grid_retry_base_seconds: float = Field(default=1.0, gt=0)
    grid_retry_max_seconds: float = Field(default=60.0, gt=0)
    grid_lease_seconds: float = Field(default=60.0, gt=0)
    grid_dispatch_poll_seconds: float = Field(default=1.0, gt=0)
    # How often the statuses of open tickets are read back from platforms on the open311 transport.
    grid_open311_poll_seconds: float = Field(default=60.0, gt=0)
    # Where platform URLs may lead (services/routing/destinations.py), comma-separated CIDRs or host
    # names: allowed ones may be internal addresses, denied ones are never reached. Loopback, private,
    # link-local (cloud metadata) and other non-public addresses are refused unless allowed here;
    # loopback is allowed in development (MINYI_DEV_SECRETS), where the simulator runs.
    grid_allowed_destinations: str = ""
    grid_denied_destinations: str = ""
    # Outside systems on NATS, one user each (shared/nats_permissions.py), comma-separated ids: what
    # `minyi nats-auth`, `minyi init-secrets` and `minyi up` make users for when not told on the command line.
    nats_grid_platforms: str = ""
    nats_registry_sources: str = ""
    # Worker processes that validate and encrypt registry records (services/identity/registry_prep.py);
    # 0: the identity process itself. On two cores the processes were slower (bench/README.md).
    registry_load_workers: int = Field(default=0, ge=0, le=64)
    hotspot_threshold: int = Field(default=5, ge=2)
    hotspot_window_days: int = Field(default=30, ge=1)
    # Routing compares and classifies reports by meaning too (services/routing/meaning.py: a sentence-
    # embedding model run on CPU, 15 to 70 ms a report); off, by their words and kinds of problem only.
    hotspot_meaning: bool = True

    migrate_on_start: bool = True
    log_level: str = "INFO"

    # Delivery: how often a failing event is tried before it goes to the dead-letter subject.
    max_deliver: int = Field(default=5, ge=1)
    ack_wait_seconds: float = 30.0
    retry_base_seconds: float = 1.0
    outbox_poll_seconds: float = 0.5
    # How long a stopping service may take before it cuts off what still runs. Kubernetes kills a
    # pod 30 s after asking it to stop (terminationGracePeriodSeconds), the deployments' preStop
    # pause takes 5 of those, and closing NATS and the pool may take 2 s each after this budget.
    stop_seconds: float = Field(default=20.0, gt=0)
    # Production runs JetStream with three replicas; the embedded server has one.
    stream_replicas: int = 1

    @model_validator(mode="after")
    def _read_nats_password_file(self) -> Settings:
        if self.nats_password is None and self.nats_password_file is not None:
            try:
                self.nats_password = SecretStr(self.nats_password_file.read_text(encoding="utf-8").strip())
            except OSError as exc:
                raise ValueError(f"MINYI_NATS_PASSWORD_FILE: {exc}") from None
        return self

    def port_of(self, name: str) -> int:
        return int(getattr(self, f"{name}_port"))

    def service_url(self, name: str) -> str:
        """The base URL of a service's HTTP API as the web tier calls it."""
        return str(getattr(self, f"{name}_url") or f"http://{self.http_host}:{self.port_of(name)}").rstrip("/")

    @property
    def dev_web_secret_file(self) -> Path:
        return self.state_dir / "keys" / "web-secret.bin"

    @property
    def state_dir(self) -> Path:
        return self.home.resolve()

    @property
    def dev_pii_keys_file(self) -> Path:
        return self.state_dir / "keys" / "pii-keys.json"

    def secret_file(self, field: str, dev_file: Path) -> tuple[Path, bool]:
        """Where the secret named by `field` lives, and whether it is a development one that may be
        made on first use. Refuses when neither the file nor MINYI_DEV_SECRETS is set."""
        path: Path | None = getattr(self, field)
        if path is not None:
            return path, False
        if self.dev_secrets:
            return dev_file, True
        raise RuntimeError(
            f"MINYI_{field.upper()} is not set: point it at the secret file"
            f" (or set MINYI_DEV_SECRETS=true to make a development one under MINYI_HOME)"
        )

    @property
    def dev_code_secret_file(self) -> Path:
        return self.state_dir / "keys" / "code-secret.bin"

    @property
    def dev_proxy_secret_file(self) -> Path:
        return self.state_dir / "keys" / "proxy-secret.txt"

    @property
    def dev_nats_passwords_file(self) -> Path:
        """The embedded NATS users' passwords, as `MINYI_NATS_PW_<USER>=…` lines."""
        return self.state_dir / "keys" / "nats-passwords.env"

    @property
    def nats_inbox_prefix(self) -> str:
        return nats_inbox_prefix(self.nats_user)

    @property
    def dev_signing_key_file(self) -> Path:
        return self.state_dir / "keys" / "jwt-signing-key.pem"

    @property
    def callback_url(self) -> str:
        return self.routing_callback_url or f"http://{self.http_host}:{self.routing_port}/v1/grid/callbacks"

    def require(self, field: str) -> str:
        value = getattr(self, field)
        if not value:
            raise RuntimeError(f"MINYI_{field.upper()} is not set; start the stack with `minyi up` or set it")
        return str(value)


_URL_PASSWORD = re.compile(r"(://[^:/@,]*):[^@/,]*@")


def redacted_url(url: str) -> str:
    """The URL (or comma-separated URLs) with any password in it replaced, for logs and messages."""
    return _URL_PASSWORD.sub(r"\1:***@", url)


# NATS users beside the services' own (see shared/nats_permissions.py).
NATS_OPS_USER = "ops"
NATS_INTEGRATION_USER = "integration"


def nats_inbox_prefix(user: str | None) -> str:
    """Where a NATS user's replies arrive: under its own prefix, so it may subscribe to those and no others'."""
    return f"_INBOX_{user}" if user else "_INBOX"


def new_nats_password() -> str:
    """A random NATS password that a server reads back from its environment unchanged: the variable's
    value is parsed as configuration, where a leading digit or sign makes a number and punctuation
    may end the string, so letters and digits only, a letter first."""
    alphabet = string.ascii_letters + string.digits
    return secrets.choice(string.ascii_letters) + "".join(secrets.choice(alphabet) for _ in range(31))


def nats_password_variable(user: str) -> str:
    """The environment variable a NATS server reads this user's password from."""
    return f"MINYI_NATS_PW_{user.upper().replace('-', '_')}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
